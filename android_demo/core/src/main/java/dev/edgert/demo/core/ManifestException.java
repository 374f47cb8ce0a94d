package dev.edgert.demo.core;

/** A manifest (or test vector) that is malformed or asks for something the demo cannot do. */
public class ManifestException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public ManifestException(String message) {
        super(message);
    }

    public ManifestException(String message, Throwable cause) {
        super(message, cause);
    }
}
