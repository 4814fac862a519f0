package load

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// TreeRSS is the resident memory of process pid and all its descendants,
// in bytes, as the kernel reports it in /proc/<pid>/status (VmRSS).
func TreeRSS(pid int) (int64, error) {
	pids, err := descendants(pid)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, p := range append(pids, pid) {
		rss, err := RSS(p)
		if err != nil {
			if p != pid && (os.IsNotExist(err) || errors.Is(err, errNoLine)) {
				continue // a child that exited meanwhile
			}
			return 0, err
		}
		total += rss
	}
	return total, nil
}

// RSS is the resident memory of one process in bytes (VmRSS).
func RSS(pid int) (int64, error) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, err
	}
	return parseKB(data, "VmRSS:")
}

// TreePss is the proportional set size of process pid and its
// descendants in bytes: each page shared by n processes counts 1/n in
// each, so the sum is the memory the tree really holds even when it
// forks a process per session.
func TreePss(pid int) (int64, error) {
	pids, err := descendants(pid)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, p := range append(pids, pid) {
		data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p), "smaps_rollup"))
		if err != nil {
			if p != pid && os.IsNotExist(err) {
				continue
			}
			return 0, err
		}
		if len(data) == 0 {
			continue // a zombie has no mappings
		}
		pss, err := parseKB(data, "Pss:")
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/smaps_rollup: %w", p, err)
		}
		total += pss
	}
	return total, nil
}

// parseKB finds the line starting with key in a /proc file and returns
// its "<n> kB" value in bytes.
func parseKB(data []byte, key string) (int64, error) {
	s := bufio.NewScanner(bytes.NewReader(data))
	for s.Scan() {
		rest, ok := strings.CutPrefix(s.Text(), key)
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("%s line %q: want \"<n> kB\"", key, rest)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s %w", key, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("%w: %s", errNoLine, key)
}

// errNoLine is what a kernel thread's or a zombie's status lacks.
var errNoLine = errors.New("no such line (a kernel thread or a zombie)")

// descendants lists every process below pid.
func descendants(pid int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // exited meanwhile
		}
		if pp, ok := parentOf(stat); ok {
			children[pp] = append(children[pp], p)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		out = append(out, children[p]...)
		queue = append(queue, children[p]...)
	}
	return out, nil
}

// parentOf reads the parent pid from /proc/<pid>/stat. The command name
// before it is in parentheses and may itself hold spaces and parentheses,
// so the fields are counted from the last ')'.
func parentOf(stat []byte) (int, bool) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 2 {
		return 0, false
	}
	pp, err := strconv.Atoi(f[1])
	return pp, err == nil
}

// clockTick is USER_HZ, the unit of the times in /proc/<pid>/stat; it is
// 100 on every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// TreeCPU is the processor time process pid and its descendants have used,
// their own and that of children they reaped: a child that exits between
// two readings moves its time into its parent's, so differences between
// readings stay right while processes come and go.
func TreeCPU(pid int) (time.Duration, error) {
	pids, err := descendants(pid)
	if err != nil {
		return 0, err
	}
	total, err := CPU(pid)
	if err != nil {
		return 0, err
	}
	for _, p := range pids {
		cpu, err := CPU(p)
		if err != nil && !os.IsNotExist(err) {
			return 0, err
		}
		total += cpu // zero for a child that exited meanwhile
	}
	return total, nil
}

// CPU is the processor time of one process and the children it reaped.
func CPU(pid int) (time.Duration, error) {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	ticks, err := cpuTicks(stat)
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return time.Duration(ticks) * clockTick, nil
}

// cpuTicks sums utime, stime, cutime and cstime: fields 14 to 17 of stat,
// that is 12 to 15 counted from the state after the command name.
func cpuTicks(stat []byte) (int64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("no command name")
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 16 {
		return 0, fmt.Errorf("%d fields after the command name, want 16 or more", len(f))
	}
	var sum int64
	for _, s := range f[11:15] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, err
		}
		sum += n
	}
	return sum, nil
}

// MachineBusy is the processor time every CPU has spent on anything but
// idling since boot (/proc/stat): with the times of the processes under
// test it tells how much else ran on the machine meanwhile.
func MachineBusy() (time.Duration, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	return parseBusy(data)
}

// parseBusy sums the aggregate "cpu" line of /proc/stat, leaving out idle
// and iowait (fields 4 and 5) and guest time, which user already holds.
func parseBusy(stat []byte) (time.Duration, error) {
	line, _, _ := bytes.Cut(stat, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 8 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat starts with %.40q, want the cpu line", line)
	}
	var busy int64
	for i, s := range f[1:min(len(f), 9)] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat cpu field %d: %w", i+1, err)
		}
		if i != 3 && i != 4 {
			busy += n
		}
	}
	return time.Duration(busy) * clockTick, nil
}
