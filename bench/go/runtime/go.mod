module tern.bench/runtime

go 1.19
