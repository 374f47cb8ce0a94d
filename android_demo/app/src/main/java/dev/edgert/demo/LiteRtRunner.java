package dev.edgert.demo;

import java.io.File;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

import org.tensorflow.lite.Interpreter;
import org.tensorflow.lite.TensorFlowLite;
import org.tensorflow.lite.gpu.CompatibilityList;
import org.tensorflow.lite.gpu.GpuDelegate;

import dev.edgert.demo.core.InputTensor;
import dev.edgert.demo.core.ModelEntry;
import dev.edgert.demo.core.Postprocess;
import dev.edgert.demo.core.TensorSpec;

/** .tflite through LiteRT's Interpreter: XNNPACK on the CPU, or the GPU delegate. */
final class LiteRtRunner implements ModelRunner {
    private final Interpreter interpreter;
    private final GpuDelegate gpu;
    private final TensorSpec outSpec;
    private final Map<Integer, Object> outputs = new HashMap<>();
    private final ByteBuffer out;
    private ByteBuffer in;

    LiteRtRunner(File model, ModelEntry entry, RunnerOptions options) {
        Interpreter.Options opts = new Interpreter.Options()
                .setNumThreads(options.threads)
                .setUseXNNPACK(true);
        gpu = options.gpu ? gpuDelegate() : null;
        if (gpu != null) {
            opts.addDelegate(gpu);
        }
        interpreter = new Interpreter(model, opts);
        int[] want = entry.preprocess.shape();
        int[] got = interpreter.getInputTensor(0).shape();
        if (!Arrays.equals(want, got)) {
            close();
            throw new IllegalStateException(entry.file + " takes " + Arrays.toString(got)
                    + " but the manifest says " + Arrays.toString(want) + ": rerun edgert android-assets");
        }
        outSpec = entry.scoreOutput();
        int index = interpreter.getOutputIndex(outSpec.name);
        out = ByteBuffer.allocateDirect(interpreter.getOutputTensor(index).numBytes())
                .order(ByteOrder.nativeOrder());
        outputs.put(index, out);
    }

    private static GpuDelegate gpuDelegate() {
        try (CompatibilityList list = new CompatibilityList()) {
            if (!list.isDelegateSupportedOnThisDevice()) {
                throw new IllegalStateException("LiteRT's GPU delegate does not support this device");
            }
            return new GpuDelegate(list.getBestOptionsForThisDevice());
        }
    }

    @Override
    public String engine() {
        return "litert";
    }

    @Override
    public String engineVersion() {
        return "LiteRT " + TensorFlowLite.runtimeVersion() + (gpu != null ? " GPU" : " XNNPACK");
    }

    @Override
    public void setInput(InputTensor input) {
        in = input.toByteBuffer();
    }

    @Override
    public void invoke() {
        in.rewind();
        out.rewind();
        interpreter.runForMultipleInputsOutputs(new Object[] {in}, outputs);
    }

    @Override
    public float[] scores() {
        return Postprocess.scores(out, outSpec);
    }

    @Override
    public void close() {
        interpreter.close();
        if (gpu != null) {
            gpu.close();
        }
    }
}
