// Platform-free core: plain Java, no Android imports. org.json is compile-only because
// Android ships it in the platform; the JVM tests get the same AOSP implementation.
plugins {
    `java-library`
}

java {
    sourceCompatibility = JavaVersion.VERSION_11
    targetCompatibility = JavaVersion.VERSION_11
}

dependencies {
    compileOnly(libs.android.json)
    testImplementation(libs.android.json)
    testImplementation(libs.junit)
}

tasks.test {
    // The same inputs tests/android passes on the host (committed copies).
    systemProperty("edgert.testvector", file("src/test/resources/testvector").path)
    systemProperty("edgert.appassets", file("../app/src/main/assets").path)
}
