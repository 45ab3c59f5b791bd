;; Grows its table by a million entries at a time until growth is refused, then traps: the table
;; counts against the instance's memory grant like its linear memory.
(module
  (table $t 1 funcref)
  (func (export "_start")
    (loop $again
      (br_if $again (i32.ne (table.grow $t (ref.null func) (i32.const 1000000)) (i32.const -1))))
    unreachable))
