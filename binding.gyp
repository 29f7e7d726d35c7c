{
  # The CPU addon. Sources come from native/sources.json (shared with CMake). Each SIMD ISA is
  # its own static library built with that ISA's flags, linked into the one binary and chosen
  # at run time from CPUID/XGETBV (HWCAP on Arm). Never -march=native.
  "variables": {
    "lkv_cflags": ["-O3", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-unused-parameter"]
  },
  "target_defaults": {
    "cflags_cc!": ["-fno-exceptions", "-std=gnu++1y", "-std=gnu++14", "-std=gnu++17"],
    "cflags_cc": ["-std=c++17", "-fexceptions"],
    "include_dirs": ["native/include", "native"],
    "xcode_settings": {
      "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
      "CLANG_CXX_LANGUAGE_STANDARD": "c++17"
    }
  },
  "targets": [
    {
      "target_name": "latentkv",
      "sources": ["<!@(node scripts/native-sources.cjs list core cpu bindings)"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags": ["<@(lkv_cflags)"],
      "conditions": [
        ["target_arch=='x64'", {
          "defines": ["<!@(node scripts/native-sources.cjs isa-defines x64)"],
          "dependencies": ["latentkv_avx2", "latentkv_avx512", "latentkv_avx512bf16"]
        }],
        ["target_arch=='arm64'", {
          "defines": ["<!@(node scripts/native-sources.cjs isa-defines arm64)"],
          "dependencies": ["latentkv_neon"]
        }]
      ]
    },
    {
      "target_name": "latentkv_avx2",
      "type": "static_library",
      "sources": ["<!@(node scripts/native-sources.cjs isa-sources avx2)"],
      "cflags": ["<@(lkv_cflags)", "<!@(node scripts/native-sources.cjs isa-flags avx2)"],
      "conditions": [["target_arch!='x64'", {"type": "none", "sources/": [["exclude", ".*"]]}]]
    },
    {
      "target_name": "latentkv_avx512",
      "type": "static_library",
      "sources": ["<!@(node scripts/native-sources.cjs isa-sources avx512)"],
      "cflags": ["<@(lkv_cflags)", "<!@(node scripts/native-sources.cjs isa-flags avx512)"],
      "conditions": [["target_arch!='x64'", {"type": "none", "sources/": [["exclude", ".*"]]}]]
    },
    {
      "target_name": "latentkv_avx512bf16",
      "type": "static_library",
      "sources": ["<!@(node scripts/native-sources.cjs isa-sources avx512bf16)"],
      "cflags": ["<@(lkv_cflags)", "<!@(node scripts/native-sources.cjs isa-flags avx512bf16)"],
      "conditions": [["target_arch!='x64'", {"type": "none", "sources/": [["exclude", ".*"]]}]]
    },
    {
      "target_name": "latentkv_neon",
      "type": "static_library",
      "sources": ["<!@(node scripts/native-sources.cjs isa-sources neon)"],
      "cflags": ["<@(lkv_cflags)", "<!@(node scripts/native-sources.cjs isa-flags neon)"],
      "conditions": [["target_arch!='arm64'", {"type": "none", "sources/": [["exclude", ".*"]]}]]
    }
  ]
}
