;; A header whose name is not a valid HTTP token (`bad header`): dropped, the others kept.
;; A WASI preview1 command: one fd_write of the whole output to stdout (fd 1).
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)

  ;; The output (55 bytes) at offset 16; the iovec at offset 0; bytes written at offset 8.
  (data (i32.const 16) "content-type: text/plain\nbad header: x\nx-good: 1\n\nbody\n")

  (func $main (export "_start")
    (i32.store (i32.const 0) (i32.const 16)) ;; iov.buf
    (i32.store (i32.const 4) (i32.const 55)) ;; iov.buf_len
    (drop
      (call $fd_write
        (i32.const 1) ;; fd: stdout
        (i32.const 0) ;; *iovs
        (i32.const 1) ;; iovs_len
        (i32.const 8))))) ;; *nwritten
