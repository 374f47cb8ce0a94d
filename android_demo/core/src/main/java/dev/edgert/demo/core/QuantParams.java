package dev.edgert.demo.core;

/**
 * Affine quantization of one tensor, as TFLite and MNN define it:
 * {@code real = scale * (q - zeroPoint)}, per tensor or per channel along {@code axis}.
 * Rounding is half to even ({@link Math#rint}), like numpy's {@code round} in edgert.
 */
public final class QuantParams {
    public final double[] scale;
    public final long[] zeroPoint;
    /** Channel axis for per-channel parameters, or -1 for per tensor. */
    public final int axis;

    public QuantParams(double[] scale, long[] zeroPoint, int axis) {
        if (scale.length == 0 || scale.length != zeroPoint.length) {
            throw new IllegalArgumentException("quantization needs as many scales as zero points");
        }
        this.scale = scale;
        this.zeroPoint = zeroPoint;
        this.axis = axis;
    }

    /** Index into scale/zeroPoint of flat element {@code i} of a tensor of {@code shape}. */
    private int channel(int i, int[] shape) {
        if (scale.length == 1) {
            return 0;
        }
        int stride = 1;
        for (int d = shape.length - 1; d > axis; d--) {
            stride *= shape[d];
        }
        return (i / stride) % shape[axis];
    }

    /** Float values to integers of {@code dtype}, saturating. */
    public int[] quantize(float[] x, int[] shape, DType dtype) {
        int[] q = new int[x.length];
        for (int i = 0; i < x.length; i++) {
            int c = channel(i, shape);
            double v = Math.rint((double) x[i] / scale[c]) + zeroPoint[c];
            q[i] = (int) Math.max(dtype.min, Math.min(dtype.max, v));
        }
        return q;
    }

    /** Integers back to float32 values. */
    public float[] dequantize(int[] q, int[] shape) {
        float[] x = new float[q.length];
        for (int i = 0; i < q.length; i++) {
            int c = channel(i, shape);
            x[i] = (float) (((double) q[i] - zeroPoint[c]) * scale[c]);
        }
        return x;
    }
}
