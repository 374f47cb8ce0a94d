package dev.edgert.demo.core;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/** A preprocessed input: normalized floats, and their quantized values for integer inputs. */
public final class InputTensor {
    public final int[] shape;
    public final DType dtype;
    public final float[] values;
    /** Null for float inputs. */
    public final int[] quantized;

    public InputTensor(int[] shape, DType dtype, float[] values, int[] quantized) {
        this.shape = shape;
        this.dtype = dtype;
        this.values = values;
        this.quantized = quantized;
    }

    /** The bytes an engine takes (native byte order), e.g. for LiteRT's Interpreter.run. */
    public ByteBuffer toByteBuffer() {
        ByteBuffer buf = ByteBuffer.allocateDirect(values.length * dtype.bytes)
                .order(ByteOrder.nativeOrder());
        for (int i = 0; i < values.length; i++) {
            switch (dtype) {
                case FLOAT32: buf.putFloat(values[i]); break;
                case INT8:
                case UINT8: buf.put((byte) quantized[i]); break;
                case INT16: buf.putShort((short) quantized[i]); break;
                default: buf.putInt(quantized[i]); break;
            }
        }
        buf.rewind();
        return buf;
    }
}
