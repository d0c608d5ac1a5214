package imaging

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"

	xdraw "golang.org/x/image/draw"
)

// thumbnail scales img, placed at at on a canvas of size canvas, to fit
// opt.ThumbnailSide (never enlarging it), on white, turns it by
// orientation o and encodes it as JPEG.
func thumbnail(img image.Image, at, canvas image.Point, o int, opt Options) ([]byte, error) {
	tw, th := fit(canvas.X, canvas.Y, opt.ThumbnailSide)
	dst := image.NewRGBA(image.Rect(0, 0, tw, th))
	xdraw.Draw(dst, dst.Rect, image.White, image.Point{}, xdraw.Src)
	b := img.Bounds()
	scale := func(v, to, from int) int { return int((int64(v)*int64(to) + int64(from)/2) / int64(from)) }
	dr := image.Rect(
		scale(at.X, tw, canvas.X), scale(at.Y, th, canvas.Y),
		scale(at.X+b.Dx(), tw, canvas.X), scale(at.Y+b.Dy(), th, canvas.Y))
	// Every source pixel counts (box averages, then a Catmull-Rom whose
	// support widens with the reduction): nothing is sampled, so fine
	// detail does not alias. Transparency ends up on the white.
	src := shrink(img, tw, th)
	xdraw.CatmullRom.Scale(dst, dr, src, src.Bounds(), xdraw.Over, nil)
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, orient(dst, o), &jpeg.Options{Quality: opt.ThumbnailQuality}); err != nil {
		return nil, fmt.Errorf("imaging: thumbnail: %w", err)
	}
	return buf.Bytes(), nil
}

// fit is the size of a w×h picture scaled so its longer side is at most
// side, never enlarged, neither side below 1.
func fit(w, h, side int) (int, int) {
	if w <= side && h <= side {
		return w, h
	}
	if w >= h {
		return side, max(1, int((int64(h)*int64(side)+int64(w)/2)/int64(w)))
	}
	return max(1, int((int64(w)*int64(side)+int64(h)/2)/int64(h))), side
}

// shrink returns img reduced by an integer factor k, averaging each k×k
// block, to no less than twice tw×th, or img itself if that saves
// little or img is of a type it does not handle. Catmull-Rom then has a
// few pixels to a thumbnail pixel instead of hundreds: a 12-megapixel
// photo scales in a tenth of the time, and a box filter followed by a
// good kernel is as free of aliasing as the kernel alone. The last
// width mod k columns (and rows) are left out: less than half a
// thumbnail pixel.
func shrink(img image.Image, tw, th int) image.Image {
	b := img.Bounds()
	k := min(b.Dx()/(2*tw), b.Dy()/(2*th))
	if k < 2 || b.Min != (image.Point{}) {
		return img
	}
	w, h := b.Dx()/k, b.Dy()/k
	r := image.Rect(0, 0, w, h)
	switch m := img.(type) {
	case *image.YCbCr:
		out := image.NewYCbCr(r, m.SubsampleRatio)
		boxPlane(out.Y, out.YStride, w, h, m.Y, m.YStride, b.Dx(), b.Dy(), 1, k)
		cw, ch := chromaSize(m.SubsampleRatio, w, h)
		scw, sch := chromaSize(m.SubsampleRatio, b.Dx(), b.Dy())
		boxPlane(out.Cb, out.CStride, cw, ch, m.Cb, m.CStride, scw, sch, 1, k)
		boxPlane(out.Cr, out.CStride, cw, ch, m.Cr, m.CStride, scw, sch, 1, k)
		return out
	case *image.Gray:
		out := image.NewGray(r)
		boxPlane(out.Pix, out.Stride, w, h, m.Pix, m.Stride, b.Dx(), b.Dy(), 1, k)
		return out
	case *image.RGBA:
		// Premultiplied, so averaging weighs colours by their opacity.
		out := image.NewRGBA(r)
		boxPlane(out.Pix, out.Stride, w, h, m.Pix, m.Stride, b.Dx(), b.Dy(), 4, k)
		return out
	}
	return img
}

// boxPlane writes to the dw×dh plane dst the averages of the k×k blocks
// of the sw×sh plane src (blocks cut short at its edges), for pixels of
// bpp bytes.
func boxPlane(dst []byte, dstStride, dw, dh int, src []byte, srcStride, sw, sh, bpp, k int) {
	sums := make([]uint32, dw*bpp)
	for dy := 0; dy < dh; dy++ {
		clear(sums)
		y0 := min(dy*k, sh-1)
		y1 := min(y0+k, sh)
		for y := y0; y < y1; y++ {
			row := src[y*srcStride : y*srcStride+sw*bpp]
			for dx := 0; dx < dw; dx++ {
				x0 := min(dx*k, sw-1)
				x1 := min(x0+k, sw)
				s := sums[dx*bpp : dx*bpp+bpp]
				for p := x0 * bpp; p < x1*bpp; p += bpp {
					for c := range s {
						s[c] += uint32(row[p+c])
					}
				}
			}
		}
		d := dst[dy*dstStride:]
		for dx := 0; dx < dw; dx++ {
			x0 := min(dx*k, sw-1)
			n := uint32((min(x0+k, sw) - x0) * (y1 - y0))
			for c := 0; c < bpp; c++ {
				d[dx*bpp+c] = byte((sums[dx*bpp+c] + n/2) / n)
			}
		}
	}
}
