package audit

import (
	"encoding/csv"
	"fmt"
	"image"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/convlens/convlens/internal/parallel"

	"github.com/convlens/convlens/datasets/lesiondata"
	"github.com/convlens/convlens/internal/atomicfile"
)

// WriteLesionArchive writes images from..from+n-1 of a lesion set to dir as
// an archive to audit, the way a clinic's export looks:
//
//	dir/images/NNNNNN.png    the image
//	dir/masks/NNNNNN.png     the lesion's mask (255 inside)
//	dir/ruler/NNNNNN.png     the ruler's band, only for the images that show one
//	dir/labels.csv           id,path,label (label: the class name)
//
// so that `convlens audit --images dir/labels.csv --masks dir/masks
// --regions ruler=dir/ruler` measures what `convlens eval lesions` measures
// on the same images. It uses GOMAXPROCS goroutines.
func WriteLesionArchive(dir string, set lesiondata.Set, from, n int) error {
	for _, sub := range []string{"images", "masks", "ruler"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o777); err != nil {
			return err
		}
	}
	errs := make([]error, n)
	parallel.For(n, func(k int) {
		i := from + k
		s := set.Sample(i)
		name := LesionID(i) + ".png"
		errs[k] = writePNG(filepath.Join(dir, "images", name), s.Image)
		if errs[k] == nil {
			errs[k] = writePNG(filepath.Join(dir, "masks", name), s.MaskImage())
		}
		if errs[k] == nil && s.HasRuler() {
			errs[k] = writePNG(filepath.Join(dir, "ruler", name), s.RulerImage())
		}
	})
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return atomicfile.WriteFile(filepath.Join(dir, "labels.csv"), func(w io.Writer) error {
		c := csv.NewWriter(w)
		c.Write([]string{"id", "path", "label"})
		for k := range n {
			i := from + k
			c.Write([]string{LesionID(i), filepath.Join("images", LesionID(i)+".png"), set.Class(i).String()})
		}
		c.Flush()
		return c.Error()
	})
}

// LesionID is the id of lesion image i in an archive WriteLesionArchive wrote.
func LesionID(i int) string { return fmt.Sprintf("%06d", i) }

// LesionIndex is the inverse of LesionID.
func LesionIndex(id string) (int, error) { return strconv.Atoi(id) }

func writePNG(path string, img image.Image) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = png.Encode(f, img)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
