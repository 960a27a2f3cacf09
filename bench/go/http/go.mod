module tern.bench/http

go 1.19
