package dev.edgert.demo.core;

/** Which output holds the class scores and how to present them (manifest {@code postprocess}). */
public final class PostprocessSpec {
    public final String output;
    public final int classes;
    public final boolean softmax;
    public final int topK;

    public PostprocessSpec(String output, int classes, boolean softmax, int topK) {
        if (classes < 1 || topK < 1) {
            throw new ManifestException("postprocess needs classes >= 1 and top_k >= 1");
        }
        this.output = output;
        this.classes = classes;
        this.softmax = softmax;
        this.topK = topK;
    }
}
