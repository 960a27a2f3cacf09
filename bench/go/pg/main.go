// PostgreSQL anchor for bench/compare.sh data: pgx v5's pgxpool with its
// defaults except MaxConns, the same load as bench/data_pg_bench.c: n
// goroutines run `SELECT v FROM bench_kv WHERE id = $1::int` (pgx caches
// the prepared statement) over 10,000 rows through a pool for a fixed
// time, after a 0.5 s warm-up.
//
//	pg <conninfo> <seconds> <goroutines> <pool>
//
// Prints "pg_select_pk_qps N" and "pg_client_cpu_ns_per_query N" (client
// process CPU, user + system).
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

	"github.com/jackc/pgx/v5/pgxpool"
)

const rows = 10000

func cpuNs() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano() + ru.Stime.Nano())
}

func die(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

func run(pool *pgxpool.Pool, n int, d time.Duration, queries, errs *atomic.Int64) {
	until := time.Now().Add(d)
	var wg sync.WaitGroup
	for g := 0; g < n; g++ {
		wg.Add(1)
		go func(x uint32) {
			defer wg.Done()
			ctx := context.Background()
			var v string
			for time.Now().Before(until) {
				for i := 0; i < 16; i++ {
					x = x*1664525 + 1013904223
					if err := pool.QueryRow(ctx, "SELECT v FROM bench_kv WHERE id = $1::int",
						int(x%rows)+1).Scan(&v); err != nil {
						errs.Add(1)
					} else {
						queries.Add(1)
					}
				}
			}
		}(uint32(g)*2654435761 ^ uint32(time.Now().UnixNano()))
	}
	wg.Wait()
}

func main() {
	if len(os.Args) != 5 {
		die(fmt.Errorf("usage: pg conninfo seconds goroutines pool"))
	}
	secs, _ := strconv.Atoi(os.Args[2])
	n, _ := strconv.Atoi(os.Args[3])
	size, _ := strconv.Atoi(os.Args[4])
	cfg, err := pgxpool.ParseConfig(os.Args[1])
	if err != nil {
		die(err)
	}
	cfg.MaxConns = int32(size)
	ctx := context.Background()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		die(err)
	}
	defer pool.Close()
	for _, q := range []string{"DROP TABLE IF EXISTS bench_kv",
		"CREATE TABLE bench_kv (id int PRIMARY KEY, v text NOT NULL)",
		"INSERT INTO bench_kv SELECT i, md5(i::text) FROM generate_series(1, 10000) i",
		"ANALYZE bench_kv"} {
		if _, err := pool.Exec(ctx, q); err != nil {
			die(err)
		}
	}
	var queries, errs atomic.Int64
	run(pool, n, 500*time.Millisecond, &queries, &errs)
	queries.Store(0)
	c0 := cpuNs()
	t0 := time.Now()
	run(pool, n, time.Duration(secs)*time.Second, &queries, &errs)
	el := time.Since(t0).Seconds()
	cpu := cpuNs() - c0
	q := queries.Load()
	fmt.Fprintf(os.Stderr, "pgx: %d queries in %.2f s, %d errors, %d goroutines, pool %d\n", q, el, errs.Load(), n, size)
	fmt.Printf("pg_select_pk_qps %.0f\n", float64(q)/el)
	fmt.Printf("pg_client_cpu_ns_per_query %.0f\n", cpu/float64(q))
	if errs.Load() > 0 {
		os.Exit(1)
	}
}
