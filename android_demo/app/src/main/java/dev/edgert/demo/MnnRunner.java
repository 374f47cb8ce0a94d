package dev.edgert.demo;

import java.io.File;

import com.taobao.android.mnn.MNNNetNative;

import dev.edgert.demo.core.InputTensor;
import dev.edgert.demo.core.ModelEntry;

/**
 * .mnn through MNN's own JNI (libmnncore.so, built from MNN's source/jni with
 * -DMNN_JNI=ON) and its Session API on the CPU backend, default precision (the
 * same as edgert's precision="auto"). MNN writes float inputs straight into the
 * session's host tensor, which is why this runner stays on the CPU.
 */
final class MnnRunner implements ModelRunner {
    private static final int FORWARD_CPU = 0;

    private final long net;
    private final long session;
    private final long input;
    private final long output;
    private final float[] scores;
    private float[] data;

    MnnRunner(File model, ModelEntry entry, RunnerOptions options) {
        if (!MNNNetNative.AVAILABLE) {
            throw new IllegalStateException("this APK was built without MNN: set edgert.mnnSourceDir "
                    + "in gradle.properties (see android_demo/README.md)");
        }
        if (!entry.preprocess.dtype.isFloat()) {
            throw new IllegalArgumentException(entry.file + ": MNN models take float input, the manifest says "
                    + entry.preprocess.dtype.numpyName);
        }
        if (options.gpu) {
            throw new IllegalArgumentException("the demo runs MNN on the CPU only");
        }
        net = MNNNetNative.nativeCreateNetFromFile(model.getPath());
        if (net == 0) {
            throw new IllegalStateException("MNN could not load " + entry.file);
        }
        session = MNNNetNative.nativeCreateSession(net, FORWARD_CPU, options.threads, null, null);
        input = MNNNetNative.nativeGetSessionInput(net, session, entry.preprocess.input);
        output = MNNNetNative.nativeGetSessionOutput(net, session, entry.postprocess.output);
        if (session == 0 || input == 0 || output == 0) {
            close();
            throw new IllegalStateException("MNN session for " + entry.file + " lacks input '"
                    + entry.preprocess.input + "' or output '" + entry.postprocess.output + "'");
        }
        scores = new float[MNNNetNative.nativeTensorGetData(output, null)];
    }

    @Override
    public String engine() {
        return "mnn";
    }

    @Override
    public String engineVersion() {
        return "MNN (Android, CPU)";
    }

    @Override
    public void setInput(InputTensor t) {
        data = t.values;
    }

    @Override
    public void invoke() {
        MNNNetNative.nativeSetInputFloatData(net, input, data);
        MNNNetNative.nativeRunSession(net, session);
        MNNNetNative.nativeTensorGetData(output, scores);
    }

    @Override
    public float[] scores() {
        return scores.clone();
    }

    @Override
    public void close() {
        if (net != 0) {
            MNNNetNative.nativeReleaseNet(net);  // releases its sessions too
        }
    }
}
