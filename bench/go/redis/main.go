// Redis anchor for bench/compare.sh data: go-redis v9 with its defaults
// (pool of 10 connections per GOMAXPROCS), the same load as
// bench/data_redis_get.c: n goroutines GET one of 1000 keys (32-byte
// values) in a loop for a fixed time.
//
//	redis <unix socket> <goroutines> <seconds>
//
// Prints "redis_get_ops_per_s N" and "redis_client_cpu_ns_per_op N".
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

const keys = 1000

func cpuNs() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano() + ru.Stime.Nano())
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: redis sock goroutines seconds")
		os.Exit(2)
	}
	n, _ := strconv.Atoi(os.Args[2])
	secs, _ := strconv.Atoi(os.Args[3])
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Network: "unix", Addr: os.Args[1]})
	defer rdb.Close()
	for i := 0; i < keys; i++ {
		if err := rdb.Set(ctx, fmt.Sprintf("key:%012d", i), "0123456789abcdef0123456789abcdef", 0).Err(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	var stop atomic.Bool
	var ops, errs atomic.Int64
	var wg sync.WaitGroup
	c0 := cpuNs()
	t0 := time.Now()
	for g := 0; g < n; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			var o, e int64
			for i := uint(g); !stop.Load(); i += 7 {
				if err := rdb.Get(ctx, fmt.Sprintf("key:%012d", i%keys)).Err(); err != nil {
					e++
				} else {
					o++
				}
			}
			ops.Add(o)
			errs.Add(e)
		}(g)
	}
	time.Sleep(time.Duration(secs) * time.Second)
	stop.Store(true)
	wg.Wait()
	el := time.Since(t0).Seconds()
	cpu := cpuNs() - c0
	fmt.Printf("redis_get_ops_per_s %.0f\n", float64(ops.Load())/el)
	fmt.Printf("redis_client_cpu_ns_per_op %.0f\n", cpu/float64(ops.Load()))
	fmt.Fprintf(os.Stderr, "go-redis: %d GETs, %d errors\n", ops.Load(), errs.Load())
	if errs.Load() > 0 {
		os.Exit(1)
	}
}
