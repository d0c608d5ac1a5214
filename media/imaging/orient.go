package imaging

import (
	"image"
	"image/draw"
)

// orient returns img as it is displayed under EXIF orientation o (2 to 8;
// anything else returns img): a new image, of the same type where that
// type is one the decoders here return, so that a JPEG keeps its chroma
// subsampling and a paletted PNG its palette; otherwise an *image.NRGBA.
// Orientations 5 to 8 swap width and height.
func orient(img image.Image, o int) image.Image {
	if o < 2 || o > 8 {
		return img
	}
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	dr := image.Rect(0, 0, w, h)
	if o >= 5 {
		dr = image.Rect(0, 0, h, w)
	}
	switch m := img.(type) {
	case *image.YCbCr:
		ratio, ok := orientedRatio(m.SubsampleRatio, o)
		if !ok || b.Min != (image.Point{}) {
			break
		}
		out := image.NewYCbCr(dr, ratio)
		orientPlane(out.Y, out.YStride, m.Y, m.YStride, w, h, 1, o)
		// The chroma planes turn as small pictures of their own. Where an
		// odd width or height leaves a half-covered chroma sample on the
		// edge, a flip moves colour by up to one luma pixel there.
		cw, ch := chromaSize(m.SubsampleRatio, w, h)
		orientPlane(out.Cb, out.CStride, m.Cb, m.CStride, cw, ch, 1, o)
		orientPlane(out.Cr, out.CStride, m.Cr, m.CStride, cw, ch, 1, o)
		return out
	case *image.Gray:
		p, s := orientPix(m.Pix[m.PixOffset(b.Min.X, b.Min.Y):], m.Stride, w, h, 1, o)
		return &image.Gray{Pix: p, Stride: s, Rect: dr}
	case *image.Gray16:
		p, s := orientPix(m.Pix[m.PixOffset(b.Min.X, b.Min.Y):], m.Stride, w, h, 2, o)
		return &image.Gray16{Pix: p, Stride: s, Rect: dr}
	case *image.CMYK:
		p, s := orientPix(m.Pix[m.PixOffset(b.Min.X, b.Min.Y):], m.Stride, w, h, 4, o)
		return &image.CMYK{Pix: p, Stride: s, Rect: dr}
	case *image.RGBA:
		p, s := orientPix(m.Pix[m.PixOffset(b.Min.X, b.Min.Y):], m.Stride, w, h, 4, o)
		return &image.RGBA{Pix: p, Stride: s, Rect: dr}
	case *image.NRGBA:
		p, s := orientPix(m.Pix[m.PixOffset(b.Min.X, b.Min.Y):], m.Stride, w, h, 4, o)
		return &image.NRGBA{Pix: p, Stride: s, Rect: dr}
	case *image.RGBA64:
		p, s := orientPix(m.Pix[m.PixOffset(b.Min.X, b.Min.Y):], m.Stride, w, h, 8, o)
		return &image.RGBA64{Pix: p, Stride: s, Rect: dr}
	case *image.NRGBA64:
		p, s := orientPix(m.Pix[m.PixOffset(b.Min.X, b.Min.Y):], m.Stride, w, h, 8, o)
		return &image.NRGBA64{Pix: p, Stride: s, Rect: dr}
	case *image.Paletted:
		p, s := orientPix(m.Pix[m.PixOffset(b.Min.X, b.Min.Y):], m.Stride, w, h, 1, o)
		return &image.Paletted{Pix: p, Stride: s, Rect: dr, Palette: m.Palette}
	}
	n := image.NewNRGBA(image.Rect(0, 0, w, h))
	draw.Draw(n, n.Rect, img, b.Min, draw.Src)
	return orient(n, o)
}

// orientedRatio is the chroma subsampling of a YCbCr image after
// orientation o: a quarter turn swaps horizontal and vertical
// subsampling. 4:1:1 and 4:1:0 have no turned counterpart in image.YCbCr.
func orientedRatio(r image.YCbCrSubsampleRatio, o int) (image.YCbCrSubsampleRatio, bool) {
	if o < 5 {
		return r, true
	}
	switch r {
	case image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio420:
		return r, true
	case image.YCbCrSubsampleRatio422:
		return image.YCbCrSubsampleRatio440, true
	case image.YCbCrSubsampleRatio440:
		return image.YCbCrSubsampleRatio422, true
	}
	return r, false
}

// orientPix turns a w×h plane of bpp-byte pixels into a new, packed one.
func orientPix(src []byte, stride, w, h, bpp, o int) ([]byte, int) {
	dw, dh := w, h
	if o >= 5 {
		dw, dh = h, w
	}
	dst := make([]byte, dw*dh*bpp)
	orientPlane(dst, dw*bpp, src, stride, w, h, bpp, o)
	return dst, dw * bpp
}

// orientPlane writes the w×h plane src, turned by orientation o, to dst.
func orientPlane(dst []byte, dstStride int, src []byte, srcStride, w, h, bpp, o int) {
	// The source offset of displayed pixel (x, y) is a + x*ix + y*iy.
	right, bottom := (w-1)*bpp, (h-1)*srcStride
	var a, ix, iy int
	switch o {
	case 2: // mirrored left to right
		a, ix, iy = right, -bpp, srcStride
	case 3: // turned half round
		a, ix, iy = right+bottom, -bpp, -srcStride
	case 4: // mirrored top to bottom
		a, ix, iy = bottom, bpp, -srcStride
	case 5: // mirrored along the main diagonal
		a, ix, iy = 0, srcStride, bpp
	case 6: // shown turned a quarter clockwise
		a, ix, iy = bottom, -srcStride, bpp
	case 7: // mirrored along the other diagonal
		a, ix, iy = right+bottom, -srcStride, -bpp
	case 8: // shown turned a quarter anticlockwise
		a, ix, iy = right, srcStride, -bpp
	default:
		a, ix, iy = 0, bpp, srcStride
	}
	dw, dh := w, h
	if o >= 5 {
		dw, dh = h, w
	}
	// Tiles keep the rows of src being read within the cache when a
	// quarter turn walks it down columns.
	const tile = 64
	for ty := 0; ty < dh; ty += tile {
		for tx := 0; tx < dw; tx += tile {
			xe := min(tx+tile, dw)
			for y := ty; y < min(ty+tile, dh); y++ {
				s := a + y*iy + tx*ix
				d := y*dstStride + tx*bpp
				if bpp == 1 {
					for x := tx; x < xe; x++ {
						dst[d] = src[s]
						s += ix
						d++
					}
					continue
				}
				for x := tx; x < xe; x++ {
					copy(dst[d:d+bpp], src[s:s+bpp])
					s += ix
					d += bpp
				}
			}
		}
	}
}

// chromaSize is the size of the chroma planes of a w×h YCbCr image at
// the origin.
func chromaSize(r image.YCbCrSubsampleRatio, w, h int) (int, int) {
	switch r {
	case image.YCbCrSubsampleRatio422:
		return (w + 1) / 2, h
	case image.YCbCrSubsampleRatio420:
		return (w + 1) / 2, (h + 1) / 2
	case image.YCbCrSubsampleRatio440:
		return w, (h + 1) / 2
	case image.YCbCrSubsampleRatio411:
		return (w + 3) / 4, h
	case image.YCbCrSubsampleRatio410:
		return (w + 3) / 4, (h + 1) / 2
	}
	return w, h
}
