package dev.edgert.demo;

import java.io.File;
import java.util.LinkedHashMap;
import java.util.Map;

import dev.edgert.demo.core.ModelEntry;

/** Model format -> engine: a registry, so adding an engine is one class and one line. */
final class Runners {
    interface Factory {
        ModelRunner open(File model, ModelEntry entry, RunnerOptions options);
    }

    private static final Map<String, Factory> BY_FORMAT = new LinkedHashMap<>();

    static {
        register("tflite", LiteRtRunner::new);
        register("mnn", MnnRunner::new);
    }

    private Runners() {
    }

    static void register(String format, Factory factory) {
        if (BY_FORMAT.putIfAbsent(format, factory) != null) {
            throw new IllegalStateException("two runners registered for ." + format);
        }
    }

    static ModelRunner open(File model, ModelEntry entry, RunnerOptions options) {
        Factory f = BY_FORMAT.get(entry.format);
        if (f == null) {
            throw new IllegalArgumentException("no engine for ." + entry.format + " models; this app runs "
                    + BY_FORMAT.keySet());
        }
        return f.open(model, entry, options);
    }
}
