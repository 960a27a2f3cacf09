module tern.bench/h2

go 1.24
