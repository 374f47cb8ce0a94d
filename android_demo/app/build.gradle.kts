plugins {
    alias(libs.plugins.android.application)
}

// MNN is built from source with the NDK when edgert.mnnSourceDir points at a checkout
// (MNN publishes no Android AAR). Its own JNI (source/jni, -DMNN_JNI=ON) is what
// com.taobao.android.mnn.MNNNetNative binds to.
val mnnSourceDir = (findProperty("edgert.mnnSourceDir") as String?).orEmpty()

android {
    namespace = "dev.edgert.demo"
    compileSdk = 36

    defaultConfig {
        applicationId = "dev.edgert.demo"
        minSdk = 24
        targetSdk = 36
        versionCode = 1
        versionName = "0.1.0"
        ndk { abiFilters += listOf("arm64-v8a", "armeabi-v7a") }
        if (mnnSourceDir.isNotEmpty()) {
            externalNativeBuild {
                cmake {
                    arguments += listOf(
                        "-DMNN_JNI=ON", "-DMNN_BUILD_SHARED_LIBS=ON", "-DMNN_SEP_BUILD=OFF",
                        "-DMNN_BUILD_TOOLS=OFF", "-DMNN_USE_SSE=OFF", "-DMNN_USE_LOGCAT=ON",
                        "-DANDROID_STL=c++_shared")
                    targets += listOf("MNN", "mnncore")
                }
            }
        }
    }

    if (mnnSourceDir.isNotEmpty()) {
        externalNativeBuild {
            cmake { path = file("$mnnSourceDir/CMakeLists.txt") }
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_11
        targetCompatibility = JavaVersion.VERSION_11
    }

    // Models are memory-mapped or copied as they are: keep them uncompressed in the APK.
    androidResources {
        noCompress += listOf("tflite", "mnn")
    }

    buildTypes {
        release {
            isMinifyEnabled = false
        }
    }
}

dependencies {
    implementation(project(":core"))
    implementation(libs.litert)
    implementation(libs.litert.gpu)
    implementation(libs.litert.gpu.api)
}
