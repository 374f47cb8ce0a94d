package dev.edgert.demo.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertTrue;

import java.io.File;

import org.junit.Test;

/** The manifest the app actually bundles parses, and every file it names is there. */
public class AppAssetsTest {
    @Test
    public void bundledManifestParses() throws Exception {
        File dir = new File(System.getProperty("edgert.appassets", "../app/src/main/assets"));
        Manifest m = Manifest.parse(TestFiles.read(new File(dir, Manifest.FILE_NAME)));
        assertFalse("the app bundles a model", m.models.isEmpty());
        for (ModelEntry e : m.models) {
            assertTrue(e.file + " is bundled", new File(dir, e.file).isFile());
            assertEquals(e.preprocess.input, e.inputs.get(0).name);
            if (e.labels != null) {
                assertEquals(e.postprocess.classes, e.labels.size());
            }
        }
        for (String s : m.samples) {
            assertTrue(s + " is bundled", new File(dir, s).isFile());
        }
    }
}
