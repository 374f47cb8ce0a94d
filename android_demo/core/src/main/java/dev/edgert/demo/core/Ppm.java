package dev.edgert.demo.core;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;

/**
 * Reads binary PPM (P6) and PGM (P5) images with maxval 255, the lossless format
 * of the shared test vector (same reader rules as edgert.preprocess.read_ppm).
 * The app decodes PNG/JPEG with Android's BitmapFactory instead.
 */
public final class Ppm {
    private Ppm() {
    }

    public static RgbImage read(InputStream in) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        byte[] chunk = new byte[8192];
        for (int n; (n = in.read(chunk)) > 0; ) {
            bytes.write(chunk, 0, n);
        }
        byte[] data = bytes.toByteArray();
        int[] pos = {0};
        String magic = token(data, pos);
        int w = Integer.parseInt(token(data, pos));
        int h = Integer.parseInt(token(data, pos));
        int maxval = Integer.parseInt(token(data, pos));
        pos[0]++;  // the single whitespace byte that ends the header
        if (!magic.equals("P6") && !magic.equals("P5")) {
            throw new IOException("PPM magic " + magic + " unsupported (binary P6/P5 only)");
        }
        if (maxval != 255 || w < 1 || h < 1) {
            throw new IOException("only 8-bit PPM/PGM of positive size, got " + w + "x" + h);
        }
        int ch = magic.equals("P6") ? 3 : 1;
        if (data.length - pos[0] < w * h * ch) {
            throw new IOException("PPM pixel data truncated");
        }
        int[] argb = new int[w * h];
        for (int i = 0; i < w * h; i++) {
            int o = pos[0] + i * ch;
            int r = data[o] & 0xFF;
            int g = ch == 3 ? data[o + 1] & 0xFF : r;
            int b = ch == 3 ? data[o + 2] & 0xFF : r;
            argb[i] = 0xFF000000 | (r << 16) | (g << 8) | b;
        }
        return new RgbImage(w, h, argb);
    }

    private static String token(byte[] d, int[] pos) throws IOException {
        int i = pos[0];
        while (true) {
            while (i < d.length && Character.isWhitespace(d[i])) {
                i++;
            }
            if (i < d.length && d[i] == '#') {
                while (i < d.length && d[i] != '\n' && d[i] != '\r') {
                    i++;
                }
                continue;
            }
            break;
        }
        int j = i;
        while (j < d.length && !Character.isWhitespace(d[j])) {
            j++;
        }
        if (j == i) {
            throw new IOException("truncated PPM header");
        }
        pos[0] = j;
        return new String(d, i, j - i, java.nio.charset.StandardCharsets.US_ASCII);
    }
}
