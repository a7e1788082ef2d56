// Command lesionarchive writes held-out images of the lesion generator to
// a folder as an archive to audit, with their masks, ruler regions and
// labels.csv (see audit.WriteLesionArchive):
//
//	go run ./cmd/convlens/internal/audit/lesionarchive -n 10000 -out archive/
//	convlens audit --model lesions --images archive/labels.csv --masks archive/masks \
//	    --regions ruler=archive/ruler --out results.parquet
//
// gives the figures of `convlens eval lesions --images 10000`.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/convlens/convlens/cmd/convlens/internal/audit"
	"github.com/convlens/convlens/datasets/lesiondata"
)

func main() {
	n := flag.Int("n", 500, "images: the first n of the held-out set `convlens eval lesions` uses")
	out := flag.String("out", "", "folder to write")
	flag.Parse()
	if *out == "" || *n < 1 {
		fmt.Fprintln(os.Stderr, "usage: lesionarchive -n N -out DIR")
		os.Exit(2)
	}
	if err := audit.WriteLesionArchive(*out, lesiondata.HeldOut(lesiondata.Standard()), 0, *n); err != nil {
		fmt.Fprintln(os.Stderr, "lesionarchive:", err)
		os.Exit(1)
	}
	fmt.Printf("wrote %d images to %s\n", *n, *out)
}
