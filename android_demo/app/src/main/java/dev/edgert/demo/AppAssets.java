package dev.edgert.demo;

import android.content.Context;
import android.graphics.Bitmap;
import android.graphics.BitmapFactory;

import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;

import dev.edgert.demo.core.Manifest;
import dev.edgert.demo.core.ModelEntry;
import dev.edgert.demo.core.RgbImage;

/** What the app reads from its assets: the manifest, model files, sample images. */
final class AppAssets {
    private AppAssets() {
    }

    static Manifest manifest(Context ctx) throws IOException {
        try (InputStream in = ctx.getAssets().open(Manifest.FILE_NAME)) {
            return Manifest.parse(new String(readAll(in), StandardCharsets.UTF_8));
        }
    }

    /**
     * The model as a file (both engines load from a path), copied out of the APK once
     * and checked against the manifest's sha256 so a stale manifest is caught here.
     */
    static File modelFile(Context ctx, ModelEntry entry) throws IOException {
        File dir = new File(ctx.getFilesDir(), "models");
        File file = new File(dir, entry.file);
        if (!file.isFile() || !entry.sha256.equals(sha256(file))) {
            if (!dir.isDirectory() && !dir.mkdirs()) {
                throw new IOException("cannot create " + dir);
            }
            try (InputStream in = ctx.getAssets().open(entry.file);
                 OutputStream out = new FileOutputStream(file)) {
                out.write(readAll(in));
            }
            String got = sha256(file);
            if (!entry.sha256.isEmpty() && !entry.sha256.equals(got)) {
                throw new IOException(entry.file + " does not match the manifest's sha256: rerun "
                        + "edgert android-assets");
            }
        }
        return file;
    }

    /** A bundled sample decoded by Android, as the core's image type. */
    static RgbImage sample(Context ctx, String path) throws IOException {
        Bitmap bmp;
        try (InputStream in = ctx.getAssets().open(path)) {
            bmp = BitmapFactory.decodeStream(in);
        }
        if (bmp == null) {
            throw new IOException(path + ": Android cannot decode this image");
        }
        return toRgb(bmp);
    }

    static RgbImage toRgb(Bitmap bmp) {
        int[] argb = new int[bmp.getWidth() * bmp.getHeight()];
        bmp.getPixels(argb, 0, bmp.getWidth(), 0, 0, bmp.getWidth(), bmp.getHeight());
        return new RgbImage(bmp.getWidth(), bmp.getHeight(), argb);
    }

    static Bitmap bitmap(Context ctx, String path) throws IOException {
        try (InputStream in = ctx.getAssets().open(path)) {
            return BitmapFactory.decodeStream(in);
        }
    }

    private static byte[] readAll(InputStream in) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        byte[] buf = new byte[1 << 16];
        for (int n; (n = in.read(buf)) > 0; ) {
            out.write(buf, 0, n);
        }
        return out.toByteArray();
    }

    private static String sha256(File file) throws IOException {
        try (InputStream in = new java.io.FileInputStream(file)) {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            byte[] digest = md.digest(readAll(in));
            StringBuilder hex = new StringBuilder();
            for (byte b : digest) {
                hex.append(String.format("%02x", b));
            }
            return hex.toString();
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
