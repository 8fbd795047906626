import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { useTranslation } from "react-i18next";
import { type Schemas, api } from "../../api/client";
import { unwrap } from "../../api/problem";
import { EditDeleteButtons, EditorSection, ItemForm, QueryList, useDeleteItem, useItemForm } from "./editableList";
import { FormError, Section, useCanManage } from "./shared";

type Label = Schemas["LabelView"];

const DEFAULT_COLOUR = "#1f6feb";

/** Labels: the list, and one form that creates a label or edits the chosen one. */
export function LabelSettings() {
  const { t } = useTranslation();
  const canManage = useCanManage();
  const labels = useQuery({ queryKey: ["labels"], queryFn: () => unwrap(api.GET("/api/labels")) });
  const [editing, setEditing] = useState<Label | null>(null);
  return (
    <>
      <EditorSection id="label-form-title" title={editing ? t("settings.labels.editTitle", { name: editing.name }) : t("settings.labels.createTitle")}>
        <LabelForm key={editing?.id ?? "new"} editing={editing} onDone={() => setEditing(null)} />
      </EditorSection>
      <Section id="label-list-title" title={t("settings.labels.listTitle")}>
        <QueryList query={labels} empty={t("settings.labels.empty")}>
          {(label) => <LabelRow label={label} canManage={canManage} onEdit={() => setEditing(label)} />}
        </QueryList>
      </Section>
    </>
  );
}

function LabelForm({ editing, onDone }: { editing: Label | null; onDone: () => void }) {
  const { t } = useTranslation();
  const [name, setName] = useState(editing?.name ?? "");
  const [colour, setColour] = useState(editing?.colour.toLowerCase() ?? DEFAULT_COLOUR);
  const [description, setDescription] = useState(editing?.description ?? "");
  const form = useItemForm({
    editing,
    queryKey: ["labels"],
    save: () => {
      const body = { name, colour, description: description.trim() === "" ? null : description };
      if (editing) return unwrap(api.PUT("/api/labels/{id}", { params: { path: { id: editing.id } }, body }));
      return unwrap(api.POST("/api/labels", { body }));
    },
    onCreated: () => {
      setName("");
      setDescription("");
    },
    onDone,
  });
  return (
    <ItemForm form={form} labelledBy="label-form-title" createLabel={t("settings.labels.create")}>
      <label>
        {t("settings.labels.name")}
        <input ref={form.first} required maxLength={50} value={name} onChange={(e) => setName(e.target.value)} />
      </label>
      <div className="colour-field">
        <label>
          {t("settings.labels.colour")}
          <input type="color" value={colour} onChange={(e) => setColour(e.target.value.toLowerCase())} />
        </label>
        {/* The value in figures, for those who see it; the colour input announces its own. */}
        <code aria-hidden="true">{colour}</code>
      </div>
      <label>
        {t("settings.labels.description")}
        <input maxLength={500} value={description} onChange={(e) => setDescription(e.target.value)} />
      </label>
    </ItemForm>
  );
}

function LabelRow({ label, canManage, onEdit }: { label: Label; canManage: boolean; onEdit: () => void }) {
  const { t } = useTranslation();
  const remove = useDeleteItem(["labels"], () => unwrap(api.DELETE("/api/labels/{id}", { params: { path: { id: label.id } } })));
  return (
    <li className="settings-item">
      <span className="swatch" style={{ background: label.colour }} aria-hidden="true" />
      <div className="item-main">
        <strong>{label.name}</strong>
        <span className="item-meta">
          <code>{label.colour}</code>
          {label.description && ` · ${label.description}`}
        </span>
      </div>
      {canManage && (
        <div className="item-actions">
          <EditDeleteButtons
            name={label.name}
            question={t("settings.labels.confirmDelete", { name: label.name })}
            onEdit={onEdit}
            deletion={remove}
          />
        </div>
      )}
      <FormError error={remove.error} />
    </li>
  );
}
