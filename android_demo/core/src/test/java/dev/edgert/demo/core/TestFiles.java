package dev.edgert.demo.core;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;

/** Where the tests find their inputs: system properties, else the committed copies. */
final class TestFiles {
    private TestFiles() {
    }

    /** The shared test vector folder ({@code -Dedgert.testvector=DIR} overrides). */
    static File vectorDir() {
        return new File(System.getProperty("edgert.testvector", "src/test/resources/testvector"));
    }

    static String read(File f) throws IOException {
        return new String(Files.readAllBytes(f.toPath()), StandardCharsets.UTF_8);
    }
}
