package com.taobao.android.mnn;

/**
 * The entry points of MNN's JNI library (MNN/source/jni/mnnnetnative.cpp, built
 * into libmnncore.so with -DMNN_JNI=ON). JNI binds by class and method name, so
 * this class keeps MNN's package and names; only the methods the demo calls are
 * declared. {@link #AVAILABLE} is false when the APK was built without MNN.
 */
public final class MNNNetNative {
    public static final boolean AVAILABLE = load();

    private MNNNetNative() {
    }

    private static boolean load() {
        try {
            System.loadLibrary("MNN");
            System.loadLibrary("mnncore");
            return true;
        } catch (UnsatisfiedLinkError e) {
            return false;
        }
    }

    public static native long nativeCreateNetFromFile(String modelName);

    public static native long nativeReleaseNet(long netPtr);

    public static native long nativeCreateSession(long netPtr, int forwardType, int numThread,
                                                  String[] saveTensors, String[] outputTensors);

    public static native int nativeRunSession(long netPtr, long sessionPtr);

    public static native long nativeGetSessionInput(long netPtr, long sessionPtr, String name);

    public static native long nativeGetSessionOutput(long netPtr, long sessionPtr, String name);

    public static native void nativeSetInputFloatData(long netPtr, long tensorPtr, float[] data);

    /** With {@code dest == null} returns the element count; else copies the floats. */
    public static native int nativeTensorGetData(long tensorPtr, float[] dest);
}
