package dev.edgert.demo.core;

/**
 * edgert's timing protocol (edgert/timing.py), so app numbers compare with
 * {@code edgert bench} and the device farm: the first run timed on its own,
 * {@code warmup} untimed runs, then {@code runs} timed runs, each timed with a
 * monotonic nanosecond clock around the engine call alone.
 */
public final class BenchmarkProtocol {
    /** A nanosecond clock; {@link System#nanoTime} in the app. */
    public interface Clock {
        long nanos();
    }

    /** What one protocol run measured. */
    public static final class Timings {
        public final double firstRunMs;
        public final double[] latenciesMs;
        public final int warmup;

        Timings(double firstRunMs, double[] latenciesMs, int warmup) {
            this.firstRunMs = firstRunMs;
            this.latenciesMs = latenciesMs;
            this.warmup = warmup;
        }

        public LatencyStats stats() {
            return LatencyStats.of(latenciesMs);
        }
    }

    private BenchmarkProtocol() {
    }

    public static Timings run(Runnable call, int runs, int warmup) {
        return run(call, runs, warmup, System::nanoTime);
    }

    public static Timings run(Runnable call, int runs, int warmup, Clock clock) {
        if (runs < 1) {
            throw new IllegalArgumentException("runs must be at least 1");
        }
        if (warmup < 0) {
            throw new IllegalArgumentException("warmup must be 0 or more");
        }
        long t0 = clock.nanos();
        call.run();
        double first = (clock.nanos() - t0) / 1e6;
        for (int i = 0; i < warmup; i++) {
            call.run();
        }
        double[] lat = new double[runs];
        for (int i = 0; i < runs; i++) {
            long s = clock.nanos();
            call.run();
            lat[i] = (clock.nanos() - s) / 1e6;
        }
        return new Timings(first, lat, warmup);
    }
}
