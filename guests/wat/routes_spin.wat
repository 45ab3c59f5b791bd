;; A `_routes` export that never returns (a loop without WASI calls); `_start` would answer
;; `hello`. Loading it must give up after the load timeout, naming the function.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "content-type: text/plain\n\nhello\n")

  (func (export "_routes")
    (loop $forever (br $forever)))

  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 32))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
