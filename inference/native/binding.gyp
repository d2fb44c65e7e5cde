{
  "targets": [
    {
      "target_name": "cxr_openjpeg",
      "sources": ["src/cxr_openjpeg.c"],
      "include_dirs": ["/usr/include/openjpeg-2.5"],
      "libraries": ["-lopenjp2"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-std=c11", "-O2", "-Wall", "-Wextra", "-Wconversion", "-Wno-sign-conversion", "-fvisibility=hidden"],
      "cflags_c": ["-std=c11"],
      "xcode_settings": {
        "OTHER_CFLAGS": ["-std=c11", "-O2", "-Wall", "-Wextra"]
      }
    }
  ]
}
