package audit_test

import (
	"fmt"

	"github.com/convlens/convlens/cmd/convlens/internal/audit"
)

// The pointing game's interval is Wilson's score interval: 8 hits in 10
// images give 0.490 to 0.943, and none in 88 gives 0 to 0.042 (closed form:
// (p + z²/2n ± z·sqrt(p(1−p)/n + z²/4n²)) / (1 + z²/n), z = 1.96).
func ExampleNewProportion() {
	p := audit.NewProportion(8, 10)
	fmt.Printf("%.1f%% (%.3f to %.3f)\n", 100*p.Value(), p.Lo, p.Hi)
	p = audit.NewProportion(0, 88)
	fmt.Printf("%.1f%% (%.3f to %.3f)\n", 100*p.Value(), p.Lo, p.Hi)
	// Output:
	// 80.0% (0.490 to 0.943)
	// 0.0% (0.000 to 0.042)
}
