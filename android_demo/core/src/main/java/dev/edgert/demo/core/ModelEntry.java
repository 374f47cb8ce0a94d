package dev.edgert.demo.core;

import java.util.List;

/** One bundled model, as the manifest describes it. */
public final class ModelEntry {
    public final String name;
    /** File name inside the app's assets. */
    public final String file;
    /** "tflite" or "mnn": picks the engine. */
    public final String format;
    public final String sha256;
    public final List<TensorSpec> inputs;
    public final List<TensorSpec> outputs;
    public final PreprocessSpec preprocess;
    public final PostprocessSpec postprocess;
    /** Null when the manifest has no labels (classes are shown by index). */
    public final List<String> labels;

    public ModelEntry(String name, String file, String format, String sha256, List<TensorSpec> inputs,
                      List<TensorSpec> outputs, PreprocessSpec preprocess, PostprocessSpec postprocess,
                      List<String> labels) {
        this.name = name;
        this.file = file;
        this.format = format;
        this.sha256 = sha256;
        this.inputs = inputs;
        this.outputs = outputs;
        this.preprocess = preprocess;
        this.postprocess = postprocess;
        this.labels = labels;
    }

    /** The output the postprocessing reads. */
    public TensorSpec scoreOutput() {
        for (TensorSpec t : outputs) {
            if (t.name.equals(postprocess.output)) {
                return t;
            }
        }
        throw new ManifestException("model " + name + " has no output '" + postprocess.output + "'");
    }
}
