package controlplane

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Merge bridges two connected calls at the network and drops both from the
// platform (CCXML <merge>): connection1's party is asked with REFER (RFC
// 3515) to call connection2's party with Replaces (RFC 3891), taking over
// that dialog. Once the REFER's NOTIFY reports a 2xx, both calls are hung up
// and each connection gets connection.merged; otherwise connection1 gets
// connection.merge.failed and nothing changes.
func (d *Daemon) Merge(id1, id2 string) error {
	c1, err := d.Connection(id1)
	if err != nil {
		return err
	}
	c2, err := d.Connection(id2)
	if err != nil {
		return err
	}
	if c1 == c2 || c1.State() != StateConnected || c2.State() != StateConnected {
		return fmt.Errorf("merge %s %s: two different connected calls needed: %w", id1, id2, ErrConnectionState)
	}
	referTo, err := replacesTarget(c2)
	if err != nil {
		return fmt.Errorf("merge %s %s: %w", id1, id2, err)
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		ctx, cancel := context.WithTimeout(d.ctx, 32*time.Second)
		defer cancel()
		if err := d.runMerge(ctx, c1, referTo); err != nil {
			c1.log.Info("merge failed", "with", id2, "err", err)
			c1.emit("connection.merge.failed", c1.eventFields(map[string]any{"reason": err.Error(), "connectionid2": id2}))
			return
		}
		c1.log.Info("merged", "with", id2)
		for _, c := range []*Connection{c1, c2} {
			hctx, hcancel := context.WithTimeout(context.Background(), 8*time.Second)
			_ = d.hangupAs(hctx, c, "merged", "connection.merged")
			hcancel()
		}
	}()
	return nil
}

// replacesTarget is c's remote target with a Replaces header for c's dialog
// (RFC 3891 §3: the tags as the far end sees them: to-tag is the far end's).
func replacesTarget(c *Connection) (string, error) {
	c.mu.Lock()
	uas, uac := c.uas, c.uac
	c.mu.Unlock()
	var target sip.Uri
	var remoteTag, localTag string
	switch {
	case uas != nil:
		ct := uas.InviteRequest.Contact()
		if ct == nil {
			return "", fmt.Errorf("no remote target: %w", ErrConnectionState)
		}
		target = ct.Address
		remoteTag, _ = uas.InviteRequest.From().Params.Get("tag")
		if uas.InviteResponse != nil {
			localTag, _ = uas.InviteResponse.To().Params.Get("tag")
		}
	case uac != nil && uac.InviteResponse != nil:
		ct := uac.InviteResponse.Contact()
		if ct == nil {
			return "", fmt.Errorf("no remote target: %w", ErrConnectionState)
		}
		target = ct.Address
		remoteTag, _ = uac.InviteResponse.To().Params.Get("tag")
		localTag, _ = uac.InviteRequest.From().Params.Get("tag")
	default:
		return "", fmt.Errorf("no dialog: %w", ErrConnectionState)
	}
	rep := c.CallID + ";to-tag=" + remoteTag + ";from-tag=" + localTag
	u := target.Clone()
	u.Headers = nil
	return "<" + u.String() + "?Replaces=" + url.QueryEscape(rep) + ">", nil
}

// runMerge sends the REFER on c's dialog and waits for the NOTIFY that
// reports the transfer's outcome (RFC 3515 §2.4.5).
func (d *Daemon) runMerge(ctx context.Context, c *Connection, referTo string) error {
	c.mu.Lock()
	uas, uac := c.uas, c.uac
	c.notify = make(chan int, 4)
	notify := c.notify
	c.mu.Unlock()
	var target sip.Uri
	if uas != nil {
		target = uas.InviteRequest.Contact().Address
	} else {
		target = uac.InviteResponse.Contact().Address
	}
	req := sip.NewRequest(sip.REFER, target)
	req.AppendHeader(sip.NewHeader("Refer-To", referTo))
	req.AppendHeader(sip.NewHeader("Referred-By", "<"+d.contact.Address.String()+">"))
	c.reqMu.Lock()
	var tx sip.ClientTransaction
	var err error
	if uas != nil {
		tx, err = uas.TransactionRequest(ctx, req)
	} else {
		tx, err = uac.TransactionRequest(ctx, req)
	}
	c.reqMu.Unlock()
	if err != nil {
		return fmt.Errorf("send refer: %w", err)
	}
	defer tx.Terminate()
	for accepted := false; !accepted; {
		select {
		case res := <-tx.Responses():
			if res.IsProvisional() {
				continue
			}
			if !res.IsSuccess() {
				return fmt.Errorf("refer refused: %d %s", res.StatusCode, res.Reason)
			}
			accepted = true
		case <-tx.Done():
			return fmt.Errorf("refer: %v", tx.Err())
		case <-ctx.Done():
			return fmt.Errorf("refer: %w", ctx.Err())
		}
	}
	for {
		select {
		case code := <-notify:
			switch {
			case code >= 200 && code < 300:
				return nil
			case code >= 300:
				return fmt.Errorf("transfer failed: %d", code)
			}
		case <-c.ended:
			return fmt.Errorf("call ended during the transfer")
		case <-ctx.Done():
			return fmt.Errorf("no transfer outcome: %w", ctx.Err())
		}
	}
}

// onNotify takes in-dialog NOTIFYs: the progress of a REFER (a message/sipfrag
// status line). Anything else is acknowledged and ignored.
func (d *Daemon) onNotify(req *sip.Request, tx sip.ServerTransaction) {
	c := d.findDialogConn(req)
	if c == nil {
		respond(tx, req, 481, "Call/Transaction Does Not Exist")
		return
	}
	respond(tx, req, 200, "OK")
	ev := req.GetHeader("Event")
	if ev == nil || !strings.HasPrefix(strings.ToLower(strings.TrimSpace(ev.Value())), "refer") {
		return
	}
	// "SIP/2.0 200 OK" (RFC 3420 sipfrag).
	line, _, _ := strings.Cut(strings.TrimSpace(string(req.Body())), "\n")
	f := strings.Fields(line)
	if len(f) < 2 || !strings.HasPrefix(f[0], "SIP/") {
		return
	}
	code, err := strconv.Atoi(f[1])
	if err != nil {
		return
	}
	c.mu.Lock()
	ch := c.notify
	c.mu.Unlock()
	if ch != nil {
		select {
		case ch <- code:
		default:
		}
	}
}
