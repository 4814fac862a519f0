package load

import (
	"os"
	"os/exec"
	"testing"
)

// TestProcessTree reads this process with a child below it: the tree's
// figures must cover both, and each must be plausible.
func TestProcessTree(t *testing.T) {
	child := exec.Command("sleep", "60")
	if err := child.Start(); err != nil {
		t.Skipf("no sleep binary: %v", err)
	}
	t.Cleanup(func() {
		child.Process.Kill()
		child.Wait()
	})
	self := os.Getpid()
	tests := []struct {
		name   string
		single func(int) (int64, error)
		tree   func(int) (int64, error)
	}{
		{"rss", RSS, TreeRSS},
		{"cpu", func(p int) (int64, error) { d, err := CPU(p); return int64(d), err },
			func(p int) (int64, error) { d, err := TreeCPU(p); return int64(d), err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mine, err := tt.single(self)
			if err != nil {
				t.Fatal(err)
			}
			kid, err := tt.single(child.Process.Pid)
			if err != nil {
				t.Fatal(err)
			}
			tree, err := tt.tree(self)
			if err != nil {
				t.Fatal(err)
			}
			// The test process keeps running between the readings, so its
			// own figure can only grow.
			if tree < mine+kid {
				t.Fatalf("tree %d < self %d + child %d", tree, mine, kid)
			}
		})
	}
	t.Run("pss", func(t *testing.T) {
		rss, err := RSS(self)
		if err != nil {
			t.Fatal(err)
		}
		pss, err := TreePss(self)
		if err != nil {
			t.Fatal(err)
		}
		// Pss never exceeds what is resident, and this process has
		// private memory of its own.
		if pss <= 0 || pss > 2*rss {
			t.Fatalf("pss %d for an rss of %d", pss, rss)
		}
	})
	t.Run("gone", func(t *testing.T) {
		if _, err := TreeRSS(1 << 30); err == nil {
			t.Fatal("TreeRSS of a pid that cannot exist: no error")
		}
	})
}

func TestMachineBusy(t *testing.T) {
	a, err := MachineBusy()
	if err != nil {
		t.Fatal(err)
	}
	if a <= 0 {
		t.Fatalf("MachineBusy = %v since boot", a)
	}
}
