package dev.edgert.demo;

import dev.edgert.demo.core.InputTensor;

/**
 * One loaded model on one engine. {@link #setInput} prepares the input bytes
 * (untimed); {@link #invoke} copies them in, runs the model and copies the
 * output out: the same span edgert's Python engines time, so the benchmark
 * screen and {@code edgert bench} measure the same thing.
 */
interface ModelRunner extends AutoCloseable {
    /** Short engine name as edgert reports it ("litert", "mnn"). */
    String engine();

    /** Engine and version, e.g. "LiteRT 1.4.2". */
    String engineVersion();

    void setInput(InputTensor input);

    void invoke();

    /** Float scores of the last run (dequantized when the output is quantized). */
    float[] scores();

    @Override
    void close();
}
