package dev.edgert.demo.core;

/** Name, shape, dtype and quantization of a model input or output (from the manifest). */
public final class TensorSpec {
    public final String name;
    /** Dims; -1 where the model leaves a dim dynamic. */
    public final int[] shape;
    public final DType dtype;
    /** Null for float tensors. */
    public final QuantParams quantization;

    public TensorSpec(String name, int[] shape, DType dtype, QuantParams quantization) {
        this.name = name;
        this.shape = shape;
        this.dtype = dtype;
        this.quantization = quantization;
    }

    public boolean isQuantized() {
        return quantization != null && !dtype.isFloat();
    }

    /** Element count with dynamic dims taken as 1. */
    public int elementCount() {
        int n = 1;
        for (int d : shape) {
            n *= Math.max(d, 1);
        }
        return n;
    }
}
