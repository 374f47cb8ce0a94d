package dev.edgert.demo.core;

/** How an image becomes the model input: the manifest's {@code preprocess} entry. */
public final class PreprocessSpec {
    public final String input;
    public final int height;
    public final int width;
    public final int channels;
    /** "NCHW" or "NHWC". */
    public final String layout;
    /** "RGB", "BGR" or "GRAY". */
    public final String color;
    /** "stretch" or "center_crop". */
    public final String resize;
    public final double pixelScale;
    public final double[] mean;
    public final double[] std;
    public final DType dtype;
    /** Null unless the input is quantized. */
    public final QuantParams quantization;

    public PreprocessSpec(String input, int height, int width, int channels, String layout,
                          String color, String resize, double pixelScale, double[] mean,
                          double[] std, DType dtype, QuantParams quantization) {
        this.input = input;
        this.height = height;
        this.width = width;
        this.channels = channels;
        this.layout = layout;
        this.color = color;
        this.resize = resize;
        this.pixelScale = pixelScale;
        this.mean = perChannel(mean, channels, "mean");
        this.std = perChannel(std, channels, "std");
        this.dtype = dtype;
        this.quantization = quantization;
        check();
    }

    private static double[] perChannel(double[] v, int channels, String what) {
        if (v.length == channels) {
            return v;
        }
        if (v.length != 1) {
            throw new ManifestException(what + " needs 1 or " + channels + " values, got " + v.length);
        }
        double[] out = new double[channels];
        java.util.Arrays.fill(out, v[0]);
        return out;
    }

    private void check() {
        if (height < 1 || width < 1) {
            throw new ManifestException("input size " + height + "x" + width + " must be positive");
        }
        if (!layout.equals("NCHW") && !layout.equals("NHWC")) {
            throw new ManifestException("layout '" + layout + "' is neither NCHW nor NHWC");
        }
        boolean gray = color.equals("GRAY");
        if (!(gray || color.equals("RGB") || color.equals("BGR")) || gray != (channels == 1)) {
            throw new ManifestException("color '" + color + "' does not fit " + channels + " channel(s)");
        }
        if (!resize.equals("stretch") && !resize.equals("center_crop")) {
            throw new ManifestException("resize '" + resize + "' is neither stretch nor center_crop");
        }
        for (double s : std) {
            if (s == 0) {
                throw new ManifestException("std must not be 0");
            }
        }
        if (!dtype.isFloat() && quantization == null) {
            throw new ManifestException("input '" + input + "' is " + dtype.numpyName
                    + " but has no quantization parameters");
        }
    }

    /** The model input shape: [1, C, H, W] or [1, H, W, C]. */
    public int[] shape() {
        return layout.equals("NCHW") ? new int[] {1, channels, height, width}
                : new int[] {1, height, width, channels};
    }
}
