import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import type { TFunction } from "i18next";
import { type FormEvent, useState } from "react";
import { useTranslation } from "react-i18next";
import { type Schemas, api } from "../../api/client";
import { unwrap } from "../../api/problem";
import { Spinner } from "../../components/Spinner";
import { inboxesQuery, membersQuery } from "./InboxSettings";
import { invitationsQuery } from "./AgentSettings";
import { FormError, ReadOnlyNotice, Section, formatDate, formatMoney, formatTime, useCanManage } from "./shared";

type Plan = Schemas["Plan"];

const KNOWN_STATUSES = ["none", "active", "trialing", "past_due", "canceled", "unpaid", "incomplete", "incomplete_expired", "paused"];

/** Where checkout sends the browser: the provider's page (kept apart so that it reads as what it does). */
function goTo(url: string): void {
  globalThis.location.assign(url);
}

/** Plan & billing: the plan, usage against its limits, billing status, payments, upgrading, plan tokens. */
export function BillingSettings() {
  const { t } = useTranslation();
  const canManage = useCanManage();
  return (
    <>
      <Section id="plan-title" title={t("settings.billing.planTitle")}>
        <CurrentPlan canManage={canManage} />
      </Section>
      <Section id="billing-title" title={t("settings.billing.billingTitle")}>
        <BillingStatus />
      </Section>
      <Section id="plans-title" title={t("settings.billing.plansTitle")}>
        <Catalogue canManage={canManage} />
      </Section>
      <Section id="token-title" title={t("settings.billing.tokenTitle")}>
        {canManage ? <RedeemToken /> : <ReadOnlyNotice />}
      </Section>
      <Section id="payments-title" title={t("settings.billing.paymentsTitle")}>
        <Payments />
      </Section>
    </>
  );
}

function CurrentPlan({ canManage }: { canManage: boolean }) {
  const { t, i18n } = useTranslation();
  // The figures behind the bars are read afresh whenever the page opens: an invitation accepted in
  // another browser a moment ago moves a seat from "pending" to "member".
  const plan = useQuery({ queryKey: ["plan"], queryFn: () => unwrap(api.GET("/api/plan")), refetchOnMount: "always" });
  const members = useQuery({ ...membersQuery, refetchOnMount: "always" });
  const inboxes = useQuery({ ...inboxesQuery, refetchOnMount: "always" });
  // Pending invitations take seats too, but only owners and admins may read them.
  const invitations = useQuery({ ...invitationsQuery, enabled: canManage, refetchOnMount: "always" });
  if (plan.isPending) return <Spinner />;
  if (plan.error) return <FormError error={plan.error} />;
  const current = plan.data.plan;
  const seats =
    members.data === undefined || (canManage && invitations.data === undefined)
      ? undefined
      : members.data.length + (invitations.data?.length ?? 0);
  return (
    <>
      <p className="plan-name">
        <strong>{current.name}</strong> · {price(current, t, i18n.language)}
      </p>
      {plan.data.since != null && (
        <p className="item-meta">{t("settings.billing.since", { when: formatDate(plan.data.since, i18n.language) })}</p>
      )}
      <div className="usage">
        <Usage
          label={t("settings.billing.conversations", { period: plan.data.period })}
          used={plan.data.usage.conversations}
          limit={current.conversations_per_month ?? null}
        />
        <FormError error={members.error ?? invitations.error} />
        {seats !== undefined && (
          <Usage
            label={t("settings.billing.seats")}
            used={seats}
            limit={current.agents ?? null}
            detail={
              canManage
                ? t("settings.billing.seatsDetail", { members: members.data?.length ?? 0, invitations: invitations.data?.length ?? 0 })
                : null
            }
          />
        )}
        <FormError error={inboxes.error} />
        {inboxes.data !== undefined && <Usage label={t("settings.billing.inboxes")} used={inboxes.data.length} limit={current.inboxes ?? null} />}
      </div>
    </>
  );
}

/** One figure against its limit: a bar, and the same figures in words. */
export function Usage({ label, used, limit, detail = null }: { label: string; used: number; limit: number | null; detail?: string | null }) {
  const { t, i18n } = useTranslation();
  const number = new Intl.NumberFormat(i18n.language);
  const words =
    limit === null
      ? t("settings.billing.usedUnlimited", { used: number.format(used) })
      : t("settings.billing.usedOf", { used: number.format(used), limit: number.format(limit) });
  const full = limit !== null && used >= limit;
  return (
    <div className="usage-row">
      <span className="usage-label">{label}</span>
      {limit !== null && (
        <meter
          aria-label={label}
          aria-valuetext={words}
          min={0}
          max={limit}
          value={used}
          low={limit * 0.8}
          high={limit * 0.95}
          optimum={0}
        />
      )}
      <span className="usage-words">
        {words}
        {full && ` — ${t("settings.billing.limitReached")}`}
        {detail && ` (${detail})`}
      </span>
    </div>
  );
}

function price(plan: Plan, t: TFunction, language: string): string {
  return t("settings.billing.perMonth", { price: formatMoney(plan.price_jpy_per_month, "jpy", language) });
}

function BillingStatus() {
  const { t, i18n } = useTranslation();
  const billing = useQuery({ queryKey: ["billing"], queryFn: () => unwrap(api.GET("/api/billing")) });
  if (billing.isPending) return <Spinner />;
  if (billing.error) return <FormError error={billing.error} />;
  const { status, plan, next_renewal_at } = billing.data;
  const known = KNOWN_STATUSES.includes(status);
  return (
    <dl className="facts">
      <dt>{t("settings.billing.status")}</dt>
      <dd>{known ? t(`settings.billing.statuses.${status as "none"}`) : status}</dd>
      {plan != null && (
        <>
          <dt>{t("settings.billing.paidPlan")}</dt>
          <dd>{plan}</dd>
        </>
      )}
      {next_renewal_at != null && (
        <>
          <dt>{t("settings.billing.renewal")}</dt>
          <dd>{formatDate(next_renewal_at, i18n.language)}</dd>
        </>
      )}
    </dl>
  );
}

function Catalogue({ canManage }: { canManage: boolean }) {
  const { t, i18n } = useTranslation();
  const plans = useQuery({ queryKey: ["plans"], queryFn: () => unwrap(api.GET("/api/plans")) });
  const plan = useQuery({ queryKey: ["plan"], queryFn: () => unwrap(api.GET("/api/plan")) });
  const checkout = useMutation({
    mutationFn: (code: string) => unwrap(api.POST("/api/billing/checkout", { body: { plan: code } })),
    onSuccess: (started) => goTo(started.checkout_url),
  });
  if (plans.isPending) return <Spinner />;
  if (plans.error) return <FormError error={plans.error} />;
  const current = plan.data?.plan;
  const limit = (value: number | null | undefined) =>
    value == null ? t("settings.billing.unlimited") : new Intl.NumberFormat(i18n.language).format(value);
  return (
    <>
      {!canManage && <ReadOnlyNotice />}
      <FormError error={checkout.error} />
      <ul className="plans">
        {plans.data.map((offer) => {
          const isCurrent = offer.code === current?.code;
          const upgrade = current !== undefined && offer.price_jpy_per_month > current.price_jpy_per_month;
          return (
            <li key={offer.code} className={isCurrent ? "plan-card current" : "plan-card"} aria-current={isCurrent ? "true" : undefined}>
              <h3>{offer.name}</h3>
              <p className="plan-price">{price(offer, t, i18n.language)}</p>
              <ul className="plan-limits">
                <li>{t("settings.billing.planAgents", { value: limit(offer.agents) })}</li>
                <li>{t("settings.billing.planInboxes", { value: limit(offer.inboxes) })}</li>
                <li>{t("settings.billing.planConversations", { value: limit(offer.conversations_per_month) })}</li>
                {offer.features.map((feature) => (
                  <li key={feature}>{t(`settings.features.${feature}`)}</li>
                ))}
              </ul>
              {isCurrent ? (
                <p className="current-mark">{t("settings.billing.current")}</p>
              ) : (
                upgrade &&
                canManage && (
                  <button
                    type="button"
                    className="primary"
                    disabled={checkout.isPending}
                    onClick={() => checkout.mutate(offer.code)}
                  >
                    {t("settings.billing.upgrade", { name: offer.name })}
                  </button>
                )
              )}
              {checkout.isPending && checkout.variables === offer.code && <Spinner label={t("settings.billing.redirecting")} />}
            </li>
          );
        })}
      </ul>
    </>
  );
}

function RedeemToken() {
  const { t } = useTranslation();
  const client = useQueryClient();
  const [token, setToken] = useState("");
  const redeem = useMutation({
    mutationFn: () =>
      unwrap(api.POST("/api/plan/register/{plan_token}", { params: { path: { plan_token: token.trim() } } })),
    onSuccess: (answer) => {
      client.setQueryData(["plan"], answer);
      void client.invalidateQueries({ queryKey: ["billing"] });
      setToken("");
    },
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    redeem.mutate();
  };
  return (
    <form className="settings-form" onSubmit={submit} aria-labelledby="token-title">
      <label>
        {t("settings.billing.token")}
        <input required autoComplete="off" value={token} onChange={(e) => setToken(e.target.value)} aria-describedby="token-hint" />
      </label>
      <small className="hint" id="token-hint">{t("settings.billing.tokenHint")}</small>
      <FormError error={redeem.error} />
      <div className="actions">
        <button type="submit" disabled={redeem.isPending || token.trim() === ""}>
          {t("settings.billing.redeem")}
        </button>
        {redeem.isPending && <Spinner label={t("settings.saving")} />}
        <span aria-live="polite">
          {redeem.isSuccess ? t("settings.billing.redeemed", { name: redeem.data.plan.name }) : ""}
        </span>
      </div>
    </form>
  );
}

function Payments() {
  const { t, i18n } = useTranslation();
  const payments = useQuery({ queryKey: ["payments"], queryFn: () => unwrap(api.GET("/api/billing/payments")) });
  if (payments.isPending) return <Spinner />;
  if (payments.error) return <FormError error={payments.error} />;
  if (payments.data.length === 0) return <p className="empty">{t("settings.billing.noPayments")}</p>;
  return (
    <table className="payments">
      <thead>
        <tr>
          <th scope="col">{t("settings.billing.paidAt")}</th>
          <th scope="col">{t("settings.billing.paymentPlan")}</th>
          <th scope="col">{t("settings.billing.amount")}</th>
          <th scope="col">{t("settings.billing.paymentStatus")}</th>
          <th scope="col">{t("settings.billing.periodEnd")}</th>
        </tr>
      </thead>
      <tbody>
        {payments.data.map((payment) => (
          <tr key={payment.id}>
            <td>{formatTime(payment.created_at, i18n.language)}</td>
            <td>{payment.plan_code ?? "—"}</td>
            <td className="number">{formatMoney(payment.amount, payment.currency, i18n.language)}</td>
            <td className={payment.status === "failed" ? "failed" : undefined}>
              {payment.status === "paid" || payment.status === "failed" ? t(`settings.billing.payment.${payment.status}`) : payment.status}
            </td>
            <td>{payment.period_end != null ? formatDate(payment.period_end, i18n.language) : "—"}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
