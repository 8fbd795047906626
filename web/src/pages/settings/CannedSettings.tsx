import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { useTranslation } from "react-i18next";
import { type Schemas, api } from "../../api/client";
import { ApiError, unwrap } from "../../api/problem";
import { Spinner } from "../../components/Spinner";
import { EditDeleteButtons, EditorSection, ItemForm, ItemList, useDeleteItem, useItemForm } from "./editableList";
import { FormError, Section, useCanManage } from "./shared";

type Canned = Schemas["CannedView"];

/** Canned responses: the list with a filter, and one form that creates one or edits the chosen one. */
export function CannedSettings() {
  const { t } = useTranslation();
  const canManage = useCanManage();
  const canned = useQuery({ queryKey: ["canned"], queryFn: () => unwrap(api.GET("/api/canned-responses")) });
  const [editing, setEditing] = useState<Canned | null>(null);
  const [filter, setFilter] = useState("");
  // A plan without canned responses is refused here too: say so, and offer nothing that would be refused.
  const unavailable = canned.error instanceof ApiError && canned.error.code === "plan_feature_unavailable";
  const needle = filter.trim().toLowerCase();
  const shown = (canned.data ?? []).filter(
    (item) => needle === "" || item.short_code.toLowerCase().includes(needle) || item.content.toLowerCase().includes(needle),
  );
  return (
    <>
      {!unavailable && (
        <EditorSection id="canned-form-title" title={editing ? t("settings.canned.editTitle", { code: editing.short_code }) : t("settings.canned.createTitle")}>
          <CannedForm key={editing?.id ?? "new"} editing={editing} onDone={() => setEditing(null)} />
        </EditorSection>
      )}
      <Section id="canned-list-title" title={t("settings.canned.listTitle")}>
        <FormError error={canned.error} />
        {canned.isPending ? (
          <Spinner />
        ) : canned.error ? null : (
          <>
            <label className="filter">
              {t("settings.canned.filter")}
              <input type="search" value={filter} onChange={(e) => setFilter(e.target.value)} aria-describedby="canned-count" />
            </label>
            <p id="canned-count" className="item-meta" aria-live="polite">
              {t("settings.canned.count", { count: shown.length, total: canned.data.length })}
            </p>
            <ItemList items={shown} empty={canned.data.length === 0 ? t("settings.canned.empty") : t("settings.canned.noMatch")}>
              {(item) => <CannedRow canned={item} canManage={canManage} onEdit={() => setEditing(item)} />}
            </ItemList>
          </>
        )}
      </Section>
    </>
  );
}

function CannedForm({ editing, onDone }: { editing: Canned | null; onDone: () => void }) {
  const { t } = useTranslation();
  const [shortCode, setShortCode] = useState(editing?.short_code ?? "");
  const [content, setContent] = useState(editing?.content ?? "");
  const form = useItemForm({
    editing,
    queryKey: ["canned"],
    save: () => {
      const body = { short_code: shortCode, content };
      if (editing) return unwrap(api.PUT("/api/canned-responses/{id}", { params: { path: { id: editing.id } }, body }));
      return unwrap(api.POST("/api/canned-responses", { body }));
    },
    onCreated: () => {
      setShortCode("");
      setContent("");
    },
    onDone,
  });
  return (
    <ItemForm form={form} labelledBy="canned-form-title" createLabel={t("settings.canned.create")}>
      <label>
        {t("settings.canned.shortCode")}
        <input
          ref={form.first}
          required
          maxLength={50}
          pattern="\s*[A-Za-z0-9_\-]{1,50}\s*"
          aria-describedby="short-code-hint"
          value={shortCode}
          onChange={(e) => setShortCode(e.target.value)}
        />
      </label>
      <small className="hint" id="short-code-hint">{t("settings.canned.shortCodeHint")}</small>
      <label>
        {t("settings.canned.content")}
        <textarea required maxLength={10000} rows={4} value={content} onChange={(e) => setContent(e.target.value)} />
      </label>
    </ItemForm>
  );
}

function CannedRow({ canned, canManage, onEdit }: { canned: Canned; canManage: boolean; onEdit: () => void }) {
  const remove = useDeleteItem(["canned"], () =>
    unwrap(api.DELETE("/api/canned-responses/{id}", { params: { path: { id: canned.id } } })),
  );
  return (
    <li className="settings-item">
      <div className="item-main">
        <strong>
          <code>/{canned.short_code}</code>
        </strong>
        <span className="canned-content">{canned.content}</span>
      </div>
      {canManage && (
        <div className="item-actions">
          <EditDeleteButtons name={`/${canned.short_code}`} onEdit={onEdit} deletion={remove} />
        </div>
      )}
      <FormError error={remove.error} />
    </li>
  );
}
