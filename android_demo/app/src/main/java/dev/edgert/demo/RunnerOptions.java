package dev.edgert.demo;

/** Engine settings picked in the UI. */
final class RunnerOptions {
    final int threads;
    final boolean gpu;

    RunnerOptions(int threads, boolean gpu) {
        this.threads = threads;
        this.gpu = gpu;
    }

    /** edgert's default: up to 4 of the CPUs. */
    static int defaultThreads() {
        return Math.max(1, Math.min(4, Runtime.getRuntime().availableProcessors()));
    }
}
