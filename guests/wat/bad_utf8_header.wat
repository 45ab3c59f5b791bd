;; A header value that is not UTF-8 (bytes ff fe): the header block cannot be read as text.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; 41 bytes.
  (data (i32.const 16) "content-type: text/plain\nx-bad: \ff\fe\n\nbody\n")

  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 41))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
