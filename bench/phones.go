package bench

import (
	"crypto/rand"
	"encoding/hex"
	"hash/fnv"
	"strconv"
	"time"
)

// areaCodes lists 318 US area codes, three digits each. With the 555
// exchange and four line digits each gives 10,000 numbers that
// github.com/nyaruka/phonenumbers accepts as valid, 3,180,000 in all.
const areaCodes = "" +
	"201202203205206207208209210212213214215216217218219220223224225228229231" +
	"234239240248251252253254256260262267269270272276279281301302303304305307" +
	"308309310312313314315316317318319320321323325330331334336337339341346347" +
	"351352360361364380385386401402404405406407408409410412413414415417419423" +
	"424425430432434435440442443445458463469470475478479480484501502503504505" +
	"507508509510512513515516517518520530531534539540541551559561562563564567" +
	"570571573574575580585586601602603605606607608609610612614615616617618619" +
	"620623626628629630631636641646650651657660661662667669678681682689701702" +
	"703704706707708712713714715716717718719720724725727730731732734737740743" +
	"747754757760762763765769770772773774775779781785786801802803804805806808" +
	"810812813814815816817818820828830831832838843845847848850854856857858859" +
	"860862863864865870872878901903904906907908909910912913914915916917918919" +
	"920925928929930931934936937938940941947949951952954956959970971972973978" +
	"979980984985986989"

const (
	numAreas     = len(areaCodes) / 3
	linesPerArea = 10000
	phoneSpace   = numAreas * linesPerArea
)

// phoneSeries maps a device index to a phone number. The run id picks a
// starting point in the space of 3.18 million numbers, so two random run
// ids share a phone with a probability of about 2n/3.18M for n devices
// each, and the same run id always gives the same numbers.
type phoneSeries struct {
	offset uint64
}

func newPhoneSeries(runID string) phoneSeries {
	h := fnv.New64a()
	_, _ = h.Write([]byte(runID))
	return phoneSeries{offset: h.Sum64() % uint64(phoneSpace)}
}

// phone returns the i-th number: +1 AAA 555 LLLL. Consecutive indexes
// walk the area codes first, so a run's numbers spread over all of them.
func (p phoneSeries) phone(i int) string {
	g := (p.offset + uint64(i)) % uint64(phoneSpace)
	area := int(g % uint64(numAreas))
	line := int(g / uint64(numAreas))
	b := make([]byte, 0, 12)
	b = append(b, "+1"...)
	b = append(b, areaCodes[3*area:3*area+3]...)
	b = append(b, "555"...)
	l := strconv.Itoa(line)
	for range 4 - len(l) {
		b = append(b, '0')
	}
	b = append(b, l...)
	return string(b)
}

// newRunID returns a fresh run id: the time and a random suffix.
func newRunID() string {
	var r [3]byte
	_, _ = rand.Read(r[:])
	return time.Now().UTC().Format("20060102-150405") + "-" + hex.EncodeToString(r[:])
}
