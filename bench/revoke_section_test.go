package bench

import (
	"strings"
	"testing"
)

func TestRevocationSectionPlacement(t *testing.T) {
	section := sectionStart + "\n## Ending sessions\n\nold-data\n" + sectionEnd + "\n"
	main := "# postern benchmarks\n\n## Figures\n\ntable\n\n## Notes from the run\n\n- a note\n"
	once := withSection(main, section)
	if !strings.Contains(once, "table\n\n"+sectionStart) || !strings.Contains(once, sectionEnd+"\n\n## Notes from the run") {
		t.Fatalf("first placement:\n%s", once)
	}
	newer := strings.Replace(section, "old-data", "new-data", 1)
	twice := withSection(once, newer)
	if strings.Count(twice, sectionStart) != 1 || !strings.Contains(twice, "new-data") || strings.Contains(twice, "old-data") {
		t.Fatalf("replacement:\n%s", twice)
	}
	if kept := keptSection(twice); kept != newer {
		t.Fatalf("kept %q, want %q", kept, newer)
	}
	if got := withSection("# report\n", section); !strings.HasSuffix(got, section) {
		t.Fatalf("without notes:\n%s", got)
	}
	if keptSection(main) != "" {
		t.Fatal("kept a section that is not there")
	}
}
