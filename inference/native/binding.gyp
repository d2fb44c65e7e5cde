{
  # One .node per decoder, so either builds (and loads) without the other's library.
  # scripts/build-native.sh sets these from the headers and libraries it finds.
  "variables": {
    "with_openjpeg%": "true",
    "openjpeg_include_dir%": "/usr/include/openjpeg-2.5",
    "with_charls%": "true",
    "charls_include_dir%": "/usr/include"
  },
  "target_defaults": {
    "defines": ["NAPI_VERSION=8"],
    "cflags": ["-Wall", "-Wextra", "-Wconversion", "-Wno-sign-conversion", "-fvisibility=hidden"],
    "cflags_c": ["-std=gnu11"],
    "xcode_settings": {
      "OTHER_CFLAGS": ["-std=gnu11", "-Wall", "-Wextra"]
    }
  },
  "targets": [
    {
      # A target that always exists, so the project is valid when neither decoder is built.
      "target_name": "cxr_native_decoders",
      "type": "none"
    }
  ],
  "conditions": [
    ["with_openjpeg=='true'", {
      "targets": [
        {
          "target_name": "cxr_openjpeg",
          "sources": ["src/cxr_openjpeg.c"],
          "include_dirs": ["<(openjpeg_include_dir)"],
          "libraries": ["-lopenjp2"]
        }
      ]
    }],
    ["with_charls=='true'", {
      "targets": [
        {
          "target_name": "cxr_charls",
          "sources": ["src/cxr_charls.c"],
          "include_dirs": ["<(charls_include_dir)"],
          "libraries": ["-lcharls"]
        }
      ]
    }]
  ]
}
