import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { type FormEvent, useEffect, useRef, useState } from "react";
import { useTranslation } from "react-i18next";
import { type Schemas, api } from "../../api/client";
import { unwrap } from "../../api/problem";
import { useSession } from "../../auth/useSession";
import { Spinner } from "../../components/Spinner";
import { membersQuery } from "./InboxSettings";
import { ConfirmDelete, CopyValue, FormError, ReadOnlyNotice, Section, formatTime, useCanManage } from "./shared";

type Member = Schemas["MemberView"];
type InvitedRole = "admin" | "agent";

/** The link an invitee opens; the token rides in the fragment, which no server (nor its log) receives. */
export function invitationLink(token: string): string {
  return `${globalThis.location.origin}/invitations/accept#${token}`;
}

export const invitationsQuery = { queryKey: ["invitations"], queryFn: () => unwrap(api.GET("/api/users/invitations")) };

/** Agents: the account's members, removing one, inviting one, and the invitations not yet accepted. */
export function AgentSettings() {
  const { t } = useTranslation();
  const canManage = useCanManage();
  return (
    <>
      <Section id="members-title" title={t("settings.agents.membersTitle")}>
        <MemberList canManage={canManage} />
      </Section>
      {canManage ? (
        <>
          <Section id="invite-title" title={t("settings.agents.inviteTitle")}>
            <InviteForm />
          </Section>
          <Section id="invitations-title" title={t("settings.agents.pendingTitle")}>
            <Invitations />
          </Section>
        </>
      ) : (
        <ReadOnlyNotice />
      )}
    </>
  );
}

function MemberList({ canManage }: { canManage: boolean }) {
  const { t } = useTranslation();
  const members = useQuery(membersQuery);
  if (members.isPending) return <Spinner />;
  if (members.error) return <FormError error={members.error} />;
  return (
    <ul className="settings-list">
      {members.data.map((member) => (
        <MemberRow key={member.id} member={member} canManage={canManage} />
      ))}
      {members.data.length === 0 && <li className="empty">{t("settings.agents.noMembers")}</li>}
    </ul>
  );
}

function MemberRow({ member, canManage }: { member: Member; canManage: boolean }) {
  const { t, i18n } = useTranslation();
  const client = useQueryClient();
  const session = useSession();
  const remove = useMutation({
    mutationFn: () => unwrap(api.DELETE("/api/users/{id}", { params: { path: { id: member.id } } })),
    onSuccess: () => client.invalidateQueries({ queryKey: ["members"] }),
  });
  const changeRole = useMutation({
    mutationFn: (role: Member["role"]) =>
      unwrap(api.PUT("/api/users/{id}/role", { params: { path: { id: member.id } }, body: { role } })),
    onSuccess: () => client.invalidateQueries({ queryKey: ["members"] }),
  });
  const self = session?.user.id === member.id;
  const owner = session?.account.role === "owner";
  // The API's rules: nobody removes themselves or changes their own role, and only an owner removes an
  // owner, changes an owner's role or makes someone an owner.
  const removable = canManage && !self && (member.role !== "owner" || owner);
  const roles: Member["role"][] = owner ? ["owner", "admin", "agent"] : ["admin", "agent"];
  return (
    <li className="settings-item">
      <div className="item-main">
        <strong>
          {member.name}
          {self && <span className="item-meta"> ({t("settings.agents.you")})</span>}
        </strong>
        <span className="item-meta">{member.email}</span>
        <span className="item-meta">
          {t(`settings.roles.${member.role}`)} · {t("settings.agents.joined", { when: formatTime(member.created_at, i18n.language) })}
        </span>
      </div>
      <div className="item-actions">
        {removable && (
          <label className="inline-label">
            <span className="visually-hidden">{t("settings.agents.roleOf", { name: member.name })}</span>
            <select
              value={member.role}
              disabled={changeRole.isPending}
              onChange={(e) => changeRole.mutate(e.target.value as Member["role"])}
            >
              {roles.map((role) => (
                <option key={role} value={role}>
                  {t(`settings.roles.${role}`)}
                </option>
              ))}
            </select>
          </label>
        )}
        {changeRole.isPending && <Spinner label={t("settings.saving")} />}
        {removable && (
          <ConfirmDelete
            name={member.name}
            action={t("settings.agents.remove")}
            question={t("settings.agents.confirmRemove", { name: member.name })}
            pending={remove.isPending}
            onConfirm={() => remove.mutate()}
          />
        )}
      </div>
      <FormError error={remove.error ?? changeRole.error} />
      {changeRole.isSuccess && (
        <p className="hint" role="status">
          {t("settings.agents.roleChanged", { name: member.name })}
        </p>
      )}
    </li>
  );
}

function InviteForm() {
  const { t } = useTranslation();
  const client = useQueryClient();
  const [email, setEmail] = useState("");
  const [name, setName] = useState("");
  const [role, setRole] = useState<InvitedRole>("agent");
  const [invited, setInvited] = useState<Schemas["Invited"] | null>(null);
  const invite = useMutation({
    mutationFn: () =>
      unwrap(api.POST("/api/users/invitations", { body: { email, role, name: name.trim() === "" ? null : name } })),
    onSuccess: (answer) => {
      void client.invalidateQueries({ queryKey: ["invitations"] });
      setInvited(answer);
      setEmail("");
      setName("");
    },
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    setInvited(null);
    invite.mutate();
  };
  return (
    <>
      {invited && <InvitationLink invited={invited} onDone={() => setInvited(null)} />}
      <form className="settings-form" onSubmit={submit} aria-labelledby="invite-title">
        <label>
          {t("settings.agents.email")}
          <input type="email" required maxLength={254} autoComplete="off" value={email} onChange={(e) => setEmail(e.target.value)} />
        </label>
        <label>
          {t("settings.agents.name")}
          <input maxLength={100} autoComplete="off" value={name} onChange={(e) => setName(e.target.value)} />
        </label>
        <label>
          {t("settings.agents.role")}
          <select value={role} onChange={(e) => setRole(e.target.value as InvitedRole)} aria-describedby="role-hint">
            <option value="agent">{t("settings.roles.agent")}</option>
            <option value="admin">{t("settings.roles.admin")}</option>
          </select>
        </label>
        <small className="hint" id="role-hint">{t("settings.agents.roleHint")}</small>
        <FormError error={invite.error} words={{ email_taken: t("settings.agents.emailTaken") }} />
        <div className="actions">
          <button type="submit" className="primary" disabled={invite.isPending}>
            {t("settings.agents.invite")}
          </button>
          {invite.isPending && <Spinner label={t("settings.saving")} />}
        </div>
      </form>
    </>
  );
}

/** The one time the API shows an invitation's token: as the link to send. */
function InvitationLink({ invited, onDone }: { invited: Schemas["Invited"]; onDone: () => void }) {
  const { t, i18n } = useTranslation();
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => heading.current?.focus(), []);
  return (
    <div className="once-panel" role="region" aria-labelledby="invited-title">
      <h3 id="invited-title" tabIndex={-1} ref={heading}>
        {t("settings.agents.invited", { email: invited.invitation.email })}
      </h3>
      <CopyValue label={t("settings.agents.link")} value={invitationLink(invited.token)} />
      <p className="warning">
        {t("settings.agents.linkOnce", { when: formatTime(invited.invitation.expires_at, i18n.language) })}
      </p>
      <button type="button" onClick={onDone}>
        {t("settings.agents.linkDone")}
      </button>
    </div>
  );
}

function Invitations() {
  const { t, i18n } = useTranslation();
  const client = useQueryClient();
  const invitations = useQuery(invitationsQuery);
  const revoke = useMutation({
    mutationFn: (id: string) => unwrap(api.DELETE("/api/users/invitations/{id}", { params: { path: { id } } })),
    onSettled: () => client.invalidateQueries({ queryKey: ["invitations"] }),
  });
  if (invitations.isPending) return <Spinner />;
  if (invitations.error) return <FormError error={invitations.error} />;
  return (
    <>
      <FormError error={revoke.error} />
      {invitations.data.length === 0 ? (
        <p className="empty">{t("settings.agents.noInvitations")}</p>
      ) : (
        <ul className="settings-list">
          {invitations.data.map((invitation) => (
            <li key={invitation.id} className="settings-item">
              <div className="item-main">
                <strong>{invitation.name ?? invitation.email}</strong>
                {invitation.name && <span className="item-meta">{invitation.email}</span>}
                <span className="item-meta">
                  {t(`settings.roles.${invitation.role}`)} ·{" "}
                  {t("settings.agents.expires", { when: formatTime(invitation.expires_at, i18n.language) })}
                </span>
              </div>
              <div className="item-actions">
                <ConfirmDelete
                  name={invitation.email}
                  action={t("settings.agents.revoke")}
                  question={t("settings.agents.confirmRevoke", { email: invitation.email })}
                  pending={revoke.isPending && revoke.variables === invitation.id}
                  onConfirm={() => revoke.mutate(invitation.id)}
                />
              </div>
            </li>
          ))}
        </ul>
      )}
    </>
  );
}
