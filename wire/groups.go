package wire

// Group changes: the change of a group event and of its chat-log entry.
const (
	ChangeCreated         = "created"
	ChangeMembersAdded    = "members_added"
	ChangeMemberRemoved   = "member_removed"
	ChangeMemberLeft      = "member_left"
	ChangeAdminAdded      = "admin_added"
	ChangeAdminRemoved    = "admin_removed"
	ChangeInfoChanged     = "info_changed"
	ChangeSettingsChanged = "settings_changed"
	// ChangeDeleted: an operator deleted the group; every member is
	// removed at once, by SystemUser.
	ChangeDeleted = "deleted"
)

// SystemUser is the author of the changes an operator makes through the
// admin API rather than a user: the by of a deleted group's change.
const SystemUser = "system"

// Group roles and setting values.
const (
	RoleAdmin   = "admin"
	RoleMember  = "member"
	AllowAll    = "all"
	AllowAdmins = "admins"
)

// GroupNote is the body of a group change's chat-log entry: history shows it
// as a message whose body is {"group": {change, by, user_ids}}.
type GroupNote struct {
	Change  string   `json:"change"`
	By      string   `json:"by"`
	UserIDs []string `json:"user_ids,omitempty"`
}

// GroupMember is one member of a group object.
type GroupMember struct {
	UserID   string `json:"user_id"`
	Role     string `json:"role"`
	JoinedAt string `json:"joined_at"` // RFC 3339 UTC
}

// GroupSettings are a group's permissions: who may edit its info, who may
// send ("all" or "admins").
type GroupSettings struct {
	EditInfo string `json:"edit_info"`
	Send     string `json:"send"`
}

// Group is the group object of the REST API and of group events.
type Group struct {
	ChatID      string        `json:"chat_id"`
	Name        string        `json:"name"`
	Description string        `json:"description"`
	Members     []GroupMember `json:"members"`
	Settings    GroupSettings `json:"settings"`
	CreatedBy   string        `json:"created_by"`
	CreatedAt   string        `json:"created_at"` // RFC 3339 UTC
	// NotAdded lists, in the answer to a create or an add, the users left
	// out (their privacy settings refuse the one who asked).
	NotAdded []string `json:"not_added,omitempty"`
}

// GroupFrame is the inbox event of a group change.
type GroupFrame struct {
	Type    string   `json:"type"`
	Cursor  int64    `json:"cursor"`
	ChatID  string   `json:"chat_id"`
	Seq     int64    `json:"seq"`
	Change  string   `json:"change"`
	By      string   `json:"by"`
	UserIDs []string `json:"user_ids,omitempty"`
	TS      int64    `json:"ts"`
	Group   *Group   `json:"group"`
}

// CreateGroupRequest is the body of POST /v1/groups.
type CreateGroupRequest struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Members     []string `json:"members"`
}

// GroupPatch is the body of PATCH /v1/groups/{chat_id}; absent fields stay.
type GroupPatch struct {
	Name        *string             `json:"name"`
	Description *string             `json:"description"`
	Settings    *GroupSettingsPatch `json:"settings"`
}

// GroupSettingsPatch changes some of a group's settings.
type GroupSettingsPatch struct {
	EditInfo *string `json:"edit_info"`
	Send     *string `json:"send"`
}

// AddMembersRequest is the body of POST /v1/groups/{chat_id}/members.
type AddMembersRequest struct {
	UserIDs []string `json:"user_ids"`
}

// MessageReceipt is one member's delivery and read of a message (null until
// it happens), in the answer of GET .../messages/{msg_id}/receipts.
type MessageReceipt struct {
	UserID      string `json:"user_id"`
	DeliveredTS *int64 `json:"delivered_ts"`
	ReadTS      *int64 `json:"read_ts"`
}

// ReceiptsResponse is the answer of GET .../messages/{msg_id}/receipts.
type ReceiptsResponse struct {
	Receipts []MessageReceipt `json:"receipts"`
}
