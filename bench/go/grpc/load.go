package main

// The suite's gRPC load client (grpc-go), the same for every server.
//
//	stream ADDR CONNS STREAMS SECONDS
//	    STREAMS bench.Stream/Many calls (server streaming) spread over
//	    CONNS connections, each read as fast as it comes for SECONDS, then
//	    cancelled; prints "<replies/s> <replies>".
//	bidi ADDR CONNS STREAMS SECONDS
//	    STREAMS bench.Stream/Echo streams spread over CONNS connections;
//	    each keeps up to streamWindow requests in flight (a sender and a
//	    receiver goroutine) for SECONDS; prints "<replies/s> <replies>".
//	rate ADDR CONNS RPS SECONDS
//	    SayHello at a fixed rate, open loop: request i is due at
//	    start + i/RPS and its latency counts from then, so a stall delays
//	    the requests behind it in the figure too (no coordinated omission);
//	    prints "<p50 us> <p99 us> <calls>"; any failed call fails the run.
//	idle ADDR CONNS
//	    CONNS connections, each made ready by one SayHello; prints "ready"
//	    and holds them until stdin closes.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pb "google.golang.org/grpc/examples/helloworld/helloworld"
)

const streamWindow = 32

func load(args []string) error {
	if len(args) < 3 {
		return errors.New("usage: load stream|rate|idle ADDR CONNS ...")
	}
	num := func(i int) int {
		if i >= len(args) {
			return 0
		}
		n, err := strconv.Atoi(args[i])
		if err != nil || n <= 0 {
			return 0
		}
		return n
	}
	conns := num(2)
	if conns == 0 {
		return errors.New("CONNS must be a positive number")
	}
	cc, err := dial(args[1], conns)
	if err != nil {
		return err
	}
	defer func() {
		for _, c := range cc {
			c.Close()
		}
	}()
	switch args[0] {
	case "stream":
		if num(3) == 0 || num(4) == 0 {
			return errors.New("usage: load stream ADDR CONNS STREAMS SECONDS")
		}
		return manyLoad(cc, num(3), time.Duration(num(4))*time.Second)
	case "bidi":
		if num(3) == 0 || num(4) == 0 {
			return errors.New("usage: load bidi ADDR CONNS STREAMS SECONDS")
		}
		return bidiLoad(cc, num(3), time.Duration(num(4))*time.Second)
	case "rate":
		if num(3) == 0 || num(4) == 0 {
			return errors.New("usage: load rate ADDR CONNS RPS SECONDS")
		}
		return rateLoad(cc, num(3), time.Duration(num(4))*time.Second)
	case "idle":
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin)
		return nil
	}
	return fmt.Errorf("unknown mode %q", args[0])
}

// dial opens n connections (one ClientConn each) and makes each ready
// with one SayHello.
func dial(addr string, n int) ([]*grpc.ClientConn, error) {
	cc := make([]*grpc.ClientConn, 0, n)
	for i := 0; i < n; i++ {
		c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return cc, err
		}
		cc = append(cc, c)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err = pb.NewGreeterClient(c).SayHello(ctx, &pb.HelloRequest{Name: "world"}, grpc.WaitForReady(true))
		cancel()
		if err != nil {
			return cc, fmt.Errorf("connection %d: %w", i, err)
		}
	}
	return cc, nil
}

var (
	manyDesc = grpc.StreamDesc{StreamName: "Many", ServerStreams: true}
	echoDesc = grpc.StreamDesc{StreamName: "Echo", ServerStreams: true, ClientStreams: true}
)

func manyLoad(cc []*grpc.ClientConn, streams int, d time.Duration) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var replies atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, streams)
	for i := 0; i < streams; i++ {
		s, err := cc[i%len(cc)].NewStream(ctx, &manyDesc, "/bench.Stream/Many")
		if err == nil {
			err = s.SendMsg(&pb.HelloRequest{Name: "world"})
		}
		if err == nil {
			err = s.CloseSend()
		}
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var r pb.HelloReply
			for {
				if err := s.RecvMsg(&r); err != nil {
					if ctx.Err() == nil {
						errc <- err
					}
					return
				}
				if r.GetMessage() != "Hello world" {
					errc <- fmt.Errorf("reply %q", r.GetMessage())
					return
				}
				replies.Add(1)
			}
		}()
	}
	return count(&replies, d, cancel, &wg, errc)
}

// count waits d (or for the first error), cancels the calls and prints
// the replies counted in d and their rate.
func count(replies *atomic.Int64, d time.Duration, cancel func(), wg *sync.WaitGroup, errc chan error) error {
	start := time.Now()
	n0 := replies.Load()
	var n int64
	select {
	case <-time.After(d):
		n = replies.Load() - n0
	case err := <-errc:
		cancel()
		return err
	}
	el := time.Since(start)
	cancel()
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
	}
	fmt.Printf("%.0f %d\n", float64(n)/el.Seconds(), n)
	return nil
}

func bidiLoad(cc []*grpc.ClientConn, streams int, d time.Duration) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var replies atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, streams)
	ready := make(chan struct{})
	for i := 0; i < streams; i++ {
		s, err := cc[i%len(cc)].NewStream(ctx, &echoDesc, "/bench.Stream/Echo")
		if err != nil {
			return err
		}
		wg.Add(2)
		window := make(chan struct{}, streamWindow)
		go func() { // sender
			defer wg.Done()
			<-ready
			req := &pb.HelloRequest{Name: "world"}
			for ctx.Err() == nil {
				select {
				case window <- struct{}{}:
				case <-ctx.Done():
				}
				if ctx.Err() != nil || s.SendMsg(req) != nil {
					break
				}
			}
			s.CloseSend()
		}()
		go func() { // receiver
			defer wg.Done()
			for {
				var r pb.HelloReply
				if err := s.RecvMsg(&r); err != nil {
					if err != io.EOF && ctx.Err() == nil {
						errc <- err
					}
					return
				}
				if r.GetMessage() != "Hello world" {
					errc <- fmt.Errorf("reply %q", r.GetMessage())
					return
				}
				replies.Add(1)
				<-window
			}
		}()
	}
	close(ready)
	return count(&replies, d, cancel, &wg, errc)
}

func rateLoad(cc []*grpc.ClientConn, rps int, d time.Duration) error {
	total := int(int64(rps) * int64(d) / int64(time.Second))
	lat := make([]time.Duration, total)
	const workers = 256
	var failed atomic.Int64
	var firstErr atomic.Value
	start := time.Now().Add(20 * time.Millisecond)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			client := pb.NewGreeterClient(cc[w%len(cc)])
			req := &pb.HelloRequest{Name: "world"}
			for i := w; i < total; i += workers {
				due := start.Add(time.Duration(int64(i) * int64(time.Second) / int64(rps)))
				time.Sleep(time.Until(due))
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				r, err := client.SayHello(ctx, req)
				cancel()
				lat[i] = time.Since(due)
				if err == nil && r.GetMessage() != "Hello world" {
					err = fmt.Errorf("reply %q", r.GetMessage())
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		}(w)
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d of %d calls failed, first: %v", n, total, firstErr.Load())
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 { return float64(lat[int(p*float64(total-1))].Nanoseconds()) / 1e3 }
	fmt.Printf("%.0f %.0f %d\n", pct(0.50), pct(0.99), total)
	return nil
}
