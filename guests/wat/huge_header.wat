;; A header block of 1 MiB: `content-type: text/plain`, then one `x-big` header whose value is
;; 1 MiB of `a`, then the body `body`, in one fd_write (preview1 writes only the first non-empty
;; iovec, so the output is laid out contiguously).
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 17)
  (data (i32.const 1024) "content-type: text/plain\nx-big: ") ;; 32 bytes, to 1056
  (data (i32.const 1049632) "\n\nbody")                       ;; after 1 MiB of `a`

  (func (export "_start")
    (memory.fill (i32.const 1056) (i32.const 0x61) (i32.const 1048576))
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 1048614))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
