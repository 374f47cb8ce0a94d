package dev.edgert.demo.core;

/** The element types the demo feeds and reads, named as numpy names them in the manifest. */
public enum DType {
    FLOAT32("float32", 4, 0, 0),
    INT8("int8", 1, -128, 127),
    UINT8("uint8", 1, 0, 255),
    INT16("int16", 2, -32768, 32767),
    INT32("int32", 4, Integer.MIN_VALUE, Integer.MAX_VALUE);

    public final String numpyName;
    public final int bytes;
    public final long min;
    public final long max;

    DType(String numpyName, int bytes, long min, long max) {
        this.numpyName = numpyName;
        this.bytes = bytes;
        this.min = min;
        this.max = max;
    }

    public boolean isFloat() {
        return this == FLOAT32;
    }

    public static DType fromName(String name) {
        for (DType t : values()) {
            if (t.numpyName.equals(name)) {
                return t;
            }
        }
        throw new ManifestException("dtype '" + name + "' is not one the demo handles "
                + "(float32, int8, uint8, int16, int32)");
    }
}
