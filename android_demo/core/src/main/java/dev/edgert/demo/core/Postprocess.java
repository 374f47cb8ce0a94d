package dev.edgert.demo.core;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/** Classification output -> ranked labels, as {@code edgert/postprocess.py} defines it. */
public final class Postprocess {
    private Postprocess() {
    }

    /** One ranked class. */
    public static final class Prediction {
        public final int index;
        public final float score;
        public final String label;

        Prediction(int index, float score, String label) {
            this.index = index;
            this.score = score;
            this.label = label;
        }

        @Override
        public String toString() {
            return label + " " + String.format(java.util.Locale.ROOT, "%.4f", score);
        }
    }

    /** Softmax in double with the max subtracted, float out. */
    public static float[] softmax(float[] scores) {
        double max = Double.NEGATIVE_INFINITY;
        for (float s : scores) {
            max = Math.max(max, s);
        }
        double[] e = new double[scores.length];
        double sum = 0;
        for (int i = 0; i < scores.length; i++) {
            e[i] = Math.exp(scores[i] - max);
            sum += e[i];
        }
        float[] out = new float[scores.length];
        for (int i = 0; i < scores.length; i++) {
            out[i] = (float) (e[i] / sum);
        }
        return out;
    }

    /** Indices of the {@code k} highest scores, highest first, ties by the lower index. */
    public static int[] topKIndices(float[] scores, int k) {
        Integer[] order = new Integer[scores.length];
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (a, b) -> scores[a] != scores[b]
                ? Float.compare(scores[b], scores[a]) : Integer.compare(a, b));
        int n = Math.max(0, Math.min(k, scores.length));
        int[] top = new int[n];
        for (int i = 0; i < n; i++) {
            top[i] = order[i];
        }
        return top;
    }

    /** Scores out of an engine's output bytes (native order), dequantized when quantized. */
    public static float[] scores(ByteBuffer raw, TensorSpec spec) {
        ByteBuffer buf = raw.duplicate().order(ByteOrder.nativeOrder());
        buf.rewind();
        int n = buf.remaining() / spec.dtype.bytes;
        if (spec.dtype.isFloat()) {
            float[] out = new float[n];
            buf.asFloatBuffer().get(out);
            return out;
        }
        int[] q = new int[n];
        for (int i = 0; i < n; i++) {
            switch (spec.dtype) {
                case INT8: q[i] = buf.get(); break;
                case UINT8: q[i] = buf.get() & 0xFF; break;
                case INT16: q[i] = buf.getShort(); break;
                default: q[i] = buf.getInt(); break;
            }
        }
        if (spec.quantization == null) {
            float[] out = new float[n];
            for (int i = 0; i < n; i++) {
                out[i] = q[i];
            }
            return out;
        }
        return spec.quantization.dequantize(q, spec.shape);
    }

    /** The model output (float scores) -> top-k predictions with labels. */
    public static List<Prediction> classify(float[] scores, PostprocessSpec spec, List<String> labels) {
        float[] probs = spec.softmax ? softmax(scores) : scores;
        List<Prediction> out = new ArrayList<>();
        for (int i : topKIndices(probs, spec.topK)) {
            String label = labels != null && i < labels.size() ? labels.get(i) : Integer.toString(i);
            out.add(new Prediction(i, probs[i], label));
        }
        return out;
    }
}
