package dev.edgert.demo.core;

/**
 * Image -> model input, step for step as {@code edgert/preprocess.py} does it
 * (crop, bilinear resize with half-pixel centers, color, normalize, layout,
 * quantize), with the same float64 arithmetic in the same order, so the shared
 * test vector matches to 1e-6.
 */
public final class Preprocess {
    private static final double[] GRAY = {0.299, 0.587, 0.114};

    private Preprocess() {
    }

    /** {y0, x0, h, w} of the window that is resized (integer maths as in Python). */
    public static int[] cropBox(int imgH, int imgW, PreprocessSpec spec) {
        if (spec.resize.equals("stretch")) {
            return new int[] {0, 0, imgH, imgW};
        }
        long th = spec.height;
        long tw = spec.width;
        if ((long) imgW * th > (long) imgH * tw) {
            int w = (int) Math.max(1, (imgH * tw + th / 2) / th);
            return new int[] {0, (imgW - w) / 2, imgH, w};
        }
        int h = (int) Math.max(1, (imgW * th + tw / 2) / tw);
        return new int[] {(imgH - h) / 2, 0, h, imgW};
    }

    /** Source index pairs and weights of a bilinear axis: i0[], i1[], f[]. */
    private static final class Axis {
        final int[] i0;
        final int[] i1;
        final double[] f;

        Axis(int nOut, int nIn) {
            i0 = new int[nOut];
            i1 = new int[nOut];
            f = new double[nOut];
            double scale = (double) nIn / nOut;
            for (int o = 0; o < nOut; o++) {
                double s = (o + 0.5) * scale - 0.5;
                s = Math.min(Math.max(s, 0.0), nIn - 1);
                i0[o] = (int) Math.floor(s);
                i1[o] = Math.min(i0[o] + 1, nIn - 1);
                f[o] = s - i0[o];
            }
        }
    }

    /** Resized pixels [h][w][3] (R, G, B as doubles in 0..255) of the crop window. */
    static double[][][] resize(RgbImage img, int[] box, int outH, int outW) {
        Axis ay = new Axis(outH, box[2]);
        Axis ax = new Axis(outW, box[3]);
        double[][][] out = new double[outH][outW][3];
        for (int y = 0; y < outH; y++) {
            int ya = box[0] + ay.i0[y];
            int yb = box[0] + ay.i1[y];
            double fy = ay.f[y];
            for (int x = 0; x < outW; x++) {
                int xa = box[1] + ax.i0[x];
                int xb = box[1] + ax.i1[x];
                double fx = ax.f[x];
                for (int c = 0; c < 3; c++) {
                    double top = img.channel(xa, ya, c) * (1.0 - fx) + img.channel(xb, ya, c) * fx;
                    double bottom = img.channel(xa, yb, c) * (1.0 - fx) + img.channel(xb, yb, c) * fx;
                    out[y][x][c] = top * (1.0 - fy) + bottom * fy;
                }
            }
        }
        return out;
    }

    /** The model input for {@code img}. */
    public static InputTensor apply(RgbImage img, PreprocessSpec spec) {
        double[][][] px = resize(img, cropBox(img.height, img.width, spec), spec.height, spec.width);
        int h = spec.height;
        int w = spec.width;
        int ch = spec.channels;
        boolean nchw = spec.layout.equals("NCHW");
        float[] values = new float[h * w * ch];
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                double[] p = px[y][x];
                for (int c = 0; c < ch; c++) {
                    double v = colorValue(p, c, spec.color);
                    int idx = nchw ? (c * h + y) * w + x : (y * w + x) * ch + c;
                    values[idx] = (float) ((v * spec.pixelScale - spec.mean[c]) / spec.std[c]);
                }
            }
        }
        int[] shape = spec.shape();
        int[] q = spec.dtype.isFloat() ? null : spec.quantization.quantize(values, shape, spec.dtype);
        return new InputTensor(shape, spec.dtype, values, q);
    }

    private static double colorValue(double[] rgb, int c, String color) {
        switch (color) {
            case "BGR": return rgb[2 - c];
            case "GRAY": return GRAY[0] * rgb[0] + GRAY[1] * rgb[1] + GRAY[2] * rgb[2];
            default: return rgb[c];
        }
    }
}
