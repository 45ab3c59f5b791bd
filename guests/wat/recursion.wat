;; Unbounded recursion: `_start` calls itself until the WebAssembly stack overflows (a trap).
(module
  (func $deeper (export "_start")
    (call $deeper)))
