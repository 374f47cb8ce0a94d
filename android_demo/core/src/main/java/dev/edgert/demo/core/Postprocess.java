package dev.edgert.demo.core;

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

    /** The model output (float, or raw quantized ints) -> top-k predictions with labels. */
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
