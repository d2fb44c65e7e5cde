{
  "targets": [
    {
      "target_name": "cxr_openjpeg",
      "conditions": [
        [
          "have_openjpeg==1",
          {
            "sources": [
              "src/cxr_openjpeg.c"
            ],
            "include_dirs": [
              "/usr/include/openjpeg-2.5"
            ],
            "libraries": [
              "-lopenjp2"
            ],
            "defines": [
              "NAPI_VERSION=8"
            ],
            "cflags": [
              "-Wall",
              "-Wextra",
              "-Wconversion",
              "-Wno-sign-conversion",
              "-fvisibility=hidden"
            ],
            "cflags_c": [
              "-std=gnu11"
            ],
            "xcode_settings": {
              "OTHER_CFLAGS": [
                "-std=gnu11",
                "-Wall",
                "-Wextra"
              ]
            }
          },
          {
            "type": "none"
          }
        ]
      ]
    },
    {
      "target_name": "cxr_resize",
      "sources": [
        "src/cxr_resize.c"
      ],
      "defines": [
        "NAPI_VERSION=8"
      ],
      "cflags": [
        "-O3",
        "-ffp-contract=off",
        "-Wall",
        "-Wextra",
        "-Wconversion",
        "-Wno-sign-conversion",
        "-fvisibility=hidden"
      ],
      "cflags_c": [
        "-std=gnu11"
      ],
      "xcode_settings": {
        "OTHER_CFLAGS": [
          "-std=gnu11",
          "-ffp-contract=off",
          "-Wall",
          "-Wextra"
        ]
      }
    },
    {
      "target_name": "cxr_dcmjpeg",
      "conditions": [
        [
          "have_dcmtk==1",
          {
            "sources": [
              "src/cxr_dcmjpeg.cc"
            ],
            "libraries": [
              "-ldcmjpeg",
              "-lijg16",
              "-lijg12",
              "-lijg8",
              "-ldcmimgle",
              "-ldcmdata",
              "-loflog",
              "-lofstd"
            ],
            "defines": [
              "NAPI_VERSION=8"
            ],
            "cflags_cc": [
              "-O2",
              "-std=gnu++17",
              "-Wall",
              "-Wextra",
              "-fvisibility=hidden"
            ]
          },
          {
            "type": "none"
          }
        ]
      ]
    }
  ],
  "variables": {
    "have_dcmtk": "<!(test -f /usr/include/dcmtk/dcmjpeg/djdijg16.h && echo 1 || echo 0)",
    "have_openjpeg": "<!(test -f /usr/include/openjpeg-2.5/openjpeg.h && echo 1 || echo 0)"
  }
}
