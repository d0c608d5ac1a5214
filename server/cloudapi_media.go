package server

import (
	"context"
	"net/http"

	"github.com/tern-im/tern/business/cloudapi"
	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/wire"
)

// STUB: replaced by the media work (issue 13).

func (s *Server) handleBizUpload(w http.ResponseWriter, r *http.Request, b store.Business) {
	writeGraph(w, cloudapi.ErrObjectNotFound(r.Method, r.URL.Path))
}

func (s *Server) handleBizMedia(w http.ResponseWriter, r *http.Request, b store.Business) {
	writeGraph(w, cloudapi.ErrObjectNotFound(r.Method, r.URL.Path))
}

func (s *Server) handleBizMediaDelete(w http.ResponseWriter, r *http.Request, b store.Business) {
	writeGraph(w, cloudapi.ErrObjectNotFound(r.Method, r.URL.Path))
}

func (s *Server) handleBizMediaContent(w http.ResponseWriter, r *http.Request, b store.Business) {
	writeGraph(w, cloudapi.ErrObjectNotFound(r.Method, r.URL.Path))
}

// bizMediaBody is the body of a media send (kind is the Cloud API's
// type: image, video, audio, document, sticker), by uploaded id or link.
func (s *Server) bizMediaBody(ctx context.Context, b store.Business, kind string, m *cloudapi.Media) (*wire.Body, *cloudapi.Error) {
	return nil, cloudapi.ErrUnsupportedMessageType()
}

// inboundMedia is a customer's media message as the Cloud API's webhook
// says it; ok false if body carries no file.
func (s *Server) inboundMedia(ctx context.Context, b store.Business, body *wire.Body) (kind string, media cloudapi.InboundMedia, ok bool) {
	return "", cloudapi.InboundMedia{}, false
}
