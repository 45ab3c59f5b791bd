;; CRLF line endings in the header block (CRs dropped) and in the body (kept byte-exact).
;; A WASI preview1 command: one fd_write of the whole output to stdout (fd 1).
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)

  ;; The output (56 bytes) at offset 16; the iovec at offset 0; bytes written at offset 8.
  (data (i32.const 16) "Content-Type: text/plain\r\nX-Extra: yes\r\n\r\nline1\r\nline2\r\n")

  (func $main (export "_start")
    (i32.store (i32.const 0) (i32.const 16)) ;; iov.buf
    (i32.store (i32.const 4) (i32.const 56)) ;; iov.buf_len
    (drop
      (call $fd_write
        (i32.const 1) ;; fd: stdout
        (i32.const 0) ;; *iovs
        (i32.const 1) ;; iovs_len
        (i32.const 8))))) ;; *nwritten
