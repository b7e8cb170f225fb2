"""Message catalogue for the safety-relevant field output, in six languages.

Languages: English (``en``), Spanish (``es``), French (``fr``), Portuguese (``pt``), Russian
(``ru``) and Arabic (``ar``): the languages of the operations ramanid serves (see the field notes).
The language is chosen by ``--lang``, else the ``RAMANID_LANG`` environment variable, else the
locale (``LC_ALL``, ``LC_MESSAGES``, ``LANG``), else English.

What is translated: verdict headlines, the hazard banner and its handling instructions (do not
open, gloves and mask, naloxone), the honesty warnings (non-measured reference; no measured
reference for a hazard class), calibration state, section labels and the summary line. Free text
that comes from the engine or the library (a verdict's ``reason``, a library entry's handling
note) is shown as it is, under a translated label.

Counts are written as ``label: number`` so that no plural forms are needed (Russian and Arabic
have several).

Portuguese follows European/African usage (``ficheiro``, ``registada``), as spoken in the
Lusophone West African countries of the operations; a Brazilian variant may be wanted.

NOTE FOR REVIEWERS: these translations were written carefully, but not by native speakers. Before
field deployment a native speaker of each language, ideally one with customs or police experience,
must review every string below, the hazard banner above all.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

LANGS: tuple[str, ...] = ("en", "es", "fr", "pt", "ru", "ar")
"""Supported language codes, English first (the fallback)."""

LANG_NAMES: dict[str, str] = {
    "en": "English", "es": "Español", "fr": "Français", "pt": "Português", "ru": "Русский",
    "ar": "العربية",
}

# Decimal separator per language (numbers are otherwise written the same way everywhere).
_DECIMAL = {"en": ".", "es": ",", "fr": ",", "pt": ",", "ru": ",", "ar": "."}

# The catalogue: key -> {lang: text}. Every key has all six languages (checked by the tests).
MESSAGES: dict[str, dict[str, str]] = {
    # -- verdict headlines --------------------------------------------------------------------
    "verdict.match": {
        "en": "IDENTIFIED: {name}",
        "es": "SUSTANCIA IDENTIFICADA: {name}",
        "fr": "SUBSTANCE IDENTIFIÉE : {name}",
        "pt": "SUBSTÂNCIA IDENTIFICADA: {name}",
        "ru": "ВЕЩЕСТВО ОПРЕДЕЛЕНО: {name}",
        "ar": "تم التعرف على المادة: {name}",
    },
    "verdict.mixture": {
        "en": "MIXTURE: {names}",
        "es": "MEZCLA: {names}",
        "fr": "MÉLANGE : {names}",
        "pt": "MISTURA: {names}",
        "ru": "СМЕСЬ: {names}",
        "ar": "خليط: {names}",
    },
    "verdict.no_match": {
        "en": "NO MATCH: the substance is not in the reference library",
        "es": "SIN COINCIDENCIA: la sustancia no está en la biblioteca de referencia",
        "fr": "AUCUNE CORRESPONDANCE : la substance ne figure pas dans la bibliothèque de "
              "référence",
        "pt": "SEM CORRESPONDÊNCIA: a substância não consta da biblioteca de referência",
        "ru": "СОВПАДЕНИЙ НЕТ: вещества нет в справочной библиотеке",
        "ar": "لا يوجد تطابق: المادة غير موجودة في المكتبة المرجعية",
    },
    "verdict.no_match_hazard": {
        "en": "NO FULL MATCH: the library does not explain the whole scan; see the hazard alarm "
              "above",
        "es": "SIN COINCIDENCIA COMPLETA: la biblioteca no explica todo el espectro; vea la "
              "alarma de peligro arriba",
        "fr": "PAS DE CORRESPONDANCE COMPLÈTE : la bibliothèque n'explique pas tout le spectre ; "
              "voir l'alarme de danger ci-dessus",
        "pt": "SEM CORRESPONDÊNCIA COMPLETA: a biblioteca não explica todo o espectro; veja o "
              "alarme de perigo acima",
        "ru": "НЕТ ПОЛНОГО СОВПАДЕНИЯ: библиотека объясняет спектр не полностью; см. сигнал "
              "опасности выше",
        "ar": "لا يوجد تطابق كامل: المكتبة لا تفسر الطيف بالكامل؛ انظر إنذار الخطر أعلاه",
    },
    "verdict.inconclusive": {
        "en": "INCONCLUSIVE: this scan cannot be judged",
        "es": "NO CONCLUYENTE: este espectro no permite decidir",
        "fr": "NON CONCLUANT : ce spectre ne permet pas de conclure",
        "pt": "INCONCLUSIVO: este espectro não permite concluir",
        "ru": "НЕТ ЗАКЛЮЧЕНИЯ: по этому спектру нельзя сделать вывод",
        "ar": "نتيجة غير حاسمة: لا يمكن الحكم بناءً على هذا الطيف",
    },
    "verdict.unknown": {
        "en": "RESULT: {verdict}",
        "es": "RESULTADO: {verdict}",
        "fr": "RÉSULTAT : {verdict}",
        "pt": "RESULTADO: {verdict}",
        "ru": "РЕЗУЛЬТАТ: {verdict}",
        "ar": "النتيجة: {verdict}",
    },
    "label.reason": {
        "en": "Reason: {reason}",
        "es": "Motivo: {reason}",
        "fr": "Motif : {reason}",
        "pt": "Motivo: {reason}",
        "ru": "Причина: {reason}",
        "ar": "السبب: {reason}",
    },
    "label.scan": {
        "en": "Scan {i}/{n}: {source}",
        "es": "Espectro {i}/{n}: {source}",
        "fr": "Spectre {i}/{n} : {source}",
        "pt": "Espectro {i}/{n}: {source}",
        "ru": "Спектр {i}/{n}: {source}",
        "ar": "الطيف {i}/{n}: {source}",
    },
    # -- hazard banner --------------------------------------------------------------------------
    "hazard.title.extreme": {
        "en": "DANGER: EXTREME HAZARD",
        "es": "PELIGRO: RIESGO EXTREMO",
        "fr": "DANGER : RISQUE EXTRÊME",
        "pt": "PERIGO: RISCO EXTREMO",
        "ru": "ОПАСНО: КРАЙНЕ ВЫСОКИЙ РИСК",
        "ar": "خطر: خطورة قصوى",
    },
    "hazard.title.high": {
        "en": "DANGER: HIGH HAZARD",
        "es": "PELIGRO: RIESGO ALTO",
        "fr": "DANGER : RISQUE ÉLEVÉ",
        "pt": "PERIGO: RISCO ELEVADO",
        "ru": "ОПАСНО: ВЫСОКИЙ РИСК",
        "ar": "خطر: خطورة عالية",
    },
    "hazard.title.low": {
        "en": "CAUTION: HAZARDOUS SUBSTANCE",
        "es": "PRECAUCIÓN: SUSTANCIA PELIGROSA",
        "fr": "ATTENTION : SUBSTANCE DANGEREUSE",
        "pt": "ATENÇÃO: SUBSTÂNCIA PERIGOSA",
        "ru": "ОСТОРОЖНО: ОПАСНОЕ ВЕЩЕСТВО",
        "ar": "تنبيه: مادة خطرة",
    },
    "hazard.opioid": {
        "en": "POSSIBLE FENTANYL-CLASS OPIOID",
        "es": "POSIBLE OPIOIDE DEL GRUPO DEL FENTANILO",
        "fr": "OPIOÏDE POSSIBLE DE LA FAMILLE DU FENTANYL",
        "pt": "POSSÍVEL OPIOIDE DO GRUPO DO FENTANIL",
        "ru": "ВОЗМОЖЕН ОПИОИД ГРУППЫ ФЕНТАНИЛА",
        "ar": "يُحتمل وجود مادة أفيونية من فئة الفنتانيل",
    },
    "hazard.possible": {
        "en": "Possibly present: {substances}",
        "es": "Posible presencia de: {substances}",
        "fr": "Présence possible : {substances}",
        "pt": "Possível presença de: {substances}",
        "ru": "Возможно присутствие: {substances}",
        "ar": "يُحتمل وجود: {substances}",
    },
    "opioid.do_not_open": {
        "en": "DO NOT OPEN the package or container.",
        "es": "NO ABRA el paquete ni el envase.",
        "fr": "N'OUVREZ PAS le colis ni le contenant.",
        "pt": "NÃO ABRA a embalagem nem o recipiente.",
        "ru": "НЕ ВСКРЫВАЙТЕ упаковку или контейнер.",
        "ar": "لا تفتح الطرد أو العبوة.",
    },
    "opioid.ppe": {
        "en": "Wear gloves and a respirator mask.",
        "es": "Use guantes y mascarilla de protección respiratoria.",
        "fr": "Portez des gants et un masque de protection respiratoire.",
        "pt": "Use luvas e máscara de proteção respiratória.",
        "ru": "Наденьте перчатки и защитную маску-респиратор.",
        "ar": "ارتدِ قفازات وكمامة واقية للتنفس.",
    },
    "opioid.naloxone": {
        "en": "Keep naloxone at hand.",
        "es": "Tenga naloxona a mano.",
        "fr": "Gardez de la naloxone à portée de main.",
        "pt": "Tenha naloxona à mão.",
        "ru": "Держите налоксон под рукой.",
        "ar": "أبقِ النالوكسون في متناول اليد.",
    },
    "hazard.generic": {
        "en": "Do not open. Follow your hazardous-materials procedure.",
        "es": "No lo abra. Siga su protocolo para materiales peligrosos.",
        "fr": "N'ouvrez pas. Suivez votre procédure pour les matières dangereuses.",
        "pt": "Não abra. Siga o seu procedimento para materiais perigosos.",
        "ru": "Не вскрывайте. Действуйте по инструкции для опасных веществ.",
        "ar": "لا تفتح العبوة. اتبع إجراءات التعامل مع المواد الخطرة.",
    },
    "hazard.confirm_lab": {
        "en": "Send the sample to a laboratory for confirmation.",
        "es": "Envíe la muestra a un laboratorio para su confirmación.",
        "fr": "Envoyez l'échantillon à un laboratoire pour confirmation.",
        "pt": "Envie a amostra a um laboratório para confirmação.",
        "ru": "Отправьте образец в лабораторию для подтверждения.",
        "ar": "أرسل العينة إلى مختبر للتأكيد.",
    },
    "hazard.library_guidance": {
        "en": "Library guidance: {message}",
        "es": "Indicaciones de la biblioteca: {message}",
        "fr": "Consignes de la bibliothèque : {message}",
        "pt": "Orientações da biblioteca: {message}",
        "ru": "Указания библиотеки: {message}",
        "ar": "إرشادات المكتبة: {message}",
    },
    # -- sections -------------------------------------------------------------------------------
    "label.candidates": {
        "en": "Candidates (score = correlation, 1.00 = identical):",
        "es": "Candidatos (puntuación = correlación; 1,00 = idéntico):",
        "fr": "Candidats (score = corrélation ; 1,00 = identique) :",
        "pt": "Candidatos (pontuação = correlação; 1,00 = idêntico):",
        "ru": "Кандидаты (оценка = корреляция; 1,00 = полное совпадение):",
        "ar": "المرشحون (الدرجة = معامل الارتباط؛ 1.00 = تطابق تام):",
    },
    "label.components": {
        "en": "Components (spectral fraction):",
        "es": "Componentes (fracción espectral):",
        "fr": "Composants (fraction spectrale) :",
        "pt": "Componentes (fração espectral):",
        "ru": "Компоненты (спектральная доля):",
        "ar": "المكونات (النسبة الطيفية):",
    },
    "label.qc": {
        "en": "Scan quality:",
        "es": "Calidad del espectro:",
        "fr": "Qualité du spectre :",
        "pt": "Qualidade do espectro:",
        "ru": "Качество спектра:",
        "ar": "جودة الطيف:",
    },
    "qc.snr": {
        "en": "signal/noise", "es": "señal/ruido", "fr": "signal/bruit", "pt": "sinal/ruído",
        "ru": "сигнал/шум", "ar": "الإشارة/الضوضاء",
    },
    "qc.saturation": {
        "en": "saturation", "es": "saturación", "fr": "saturation", "pt": "saturação",
        "ru": "насыщение", "ar": "التشبع",
    },
    "qc.fluorescence": {
        "en": "fluorescence", "es": "fluorescencia", "fr": "fluorescence", "pt": "fluorescência",
        "ru": "флуоресценция", "ar": "التفلور",
    },
    "qc.coverage": {
        "en": "axis coverage", "es": "cobertura del eje", "fr": "couverture de l'axe",
        "pt": "cobertura do eixo", "ru": "покрытие оси", "ar": "تغطية المحور",
    },
    "qc.shift": {
        "en": "shift applied", "es": "desplazamiento aplicado", "fr": "décalage appliqué",
        "pt": "deslocamento aplicado", "ru": "применённый сдвиг", "ar": "الإزاحة المطبقة",
    },
    "label.warnings": {
        "en": "Warnings:",
        "es": "Advertencias:",
        "fr": "Avertissements :",
        "pt": "Avisos:",
        "ru": "Предупреждения:",
        "ar": "تحذيرات:",
    },
    "label.library": {
        "en": "Library: {version} (sha256 {sha})",
        "es": "Biblioteca: {version} (sha256 {sha})",
        "fr": "Bibliothèque : {version} (sha256 {sha})",
        "pt": "Biblioteca: {version} (sha256 {sha})",
        "ru": "Библиотека: {version} (sha256 {sha})",
        "ar": "المكتبة: {version} (sha256 {sha})",
    },
    "label.device": {
        "en": "Device: {device}",
        "es": "Equipo: {device}",
        "fr": "Appareil : {device}",
        "pt": "Equipamento: {device}",
        "ru": "Прибор: {device}",
        "ar": "الجهاز: {device}",
    },
    # -- honesty warnings -----------------------------------------------------------------------
    "warn.non_measured_reference": {
        "en": "This result rests on a reference that was not measured ({kind}): {names}. "
              "Confirm in a laboratory.",
        "es": "Este resultado se basa en una referencia que no fue medida ({kind}): {names}. "
              "Confírmelo en un laboratorio.",
        "fr": "Ce résultat repose sur une référence qui n'a pas été mesurée ({kind}) : {names}. "
              "Faites-le confirmer par un laboratoire.",
        "pt": "Este resultado baseia-se numa referência que não foi medida ({kind}): {names}. "
              "Confirme em laboratório.",
        "ru": "Результат основан на эталоне, который не был измерен ({kind}): {names}. "
              "Подтвердите в лаборатории.",
        "ar": "تستند هذه النتيجة إلى مرجع غير مُقاس ({kind}): {names}. يجب التأكيد في مختبر.",
    },
    "warn.no_measured_reference_for_class": {
        "en": "Class \u201c{cls}\u201d: the library holds no measured reference. A negative result "
              "does NOT rule it out. Load a laboratory-validated library for field use.",
        "es": "Clase «{cls}»: la biblioteca no contiene ninguna referencia medida. Un resultado "
              "negativo NO descarta su presencia. Para uso en campo, cargue una biblioteca "
              "validada por un laboratorio.",
        "fr": "Classe « {cls} » : la bibliothèque ne contient aucune référence mesurée. Un "
              "résultat négatif n'exclut PAS leur présence. Pour l'usage sur le terrain, "
              "chargez une bibliothèque validée par un laboratoire.",
        "pt": "Classe «{cls}»: a biblioteca não contém nenhuma referência medida. Um resultado "
              "negativo NÃO exclui a sua presença. Para uso em campo, carregue uma biblioteca "
              "validada por laboratório.",
        "ru": "Класс «{cls}»: в библиотеке нет ни одного измеренного эталона. Отрицательный "
              "результат НЕ исключает присутствия веществ этого класса. Для работы в полевых "
              "условиях загрузите библиотеку, валидированную лабораторией.",
        "ar": "الفئة «{cls}»: لا تحتوي المكتبة على أي مرجع مُقاس لها. النتيجة السلبية لا "
              "تستبعد وجودها. للاستخدام الميداني، حمِّل مكتبة معتمدة من مختبر.",
    },
    # -- calibration ----------------------------------------------------------------------------
    "cal.ok": {
        "en": "Calibration: valid ({id}, {age} days old)",
        "es": "Calibración: válida ({id}, antigüedad {age} días)",
        "fr": "Étalonnage : valide ({id}, ancienneté {age} jours)",
        "pt": "Calibração: válida ({id}, idade {age} dias)",
        "ru": "Калибровка: действительна ({id}, возраст в днях: {age})",
        "ar": "المعايرة: صالحة ({id}، عمرها بالأيام: {age})",
    },
    "cal.missing": {
        "en": "Calibration: none on record for this device; shifts may be off. Calibrate it.",
        "es": "Calibración: no hay ninguna registrada para este equipo; los desplazamientos "
              "pueden ser inexactos. Calíbrelo.",
        "fr": "Étalonnage : aucun enregistré pour cet appareil ; les décalages peuvent être "
              "faux. Étalonnez-le.",
        "pt": "Calibração: nenhuma registada para este equipamento; os deslocamentos podem "
              "estar errados. Calibre-o.",
        "ru": "Калибровка: для этого прибора нет записи; сдвиги могут быть неточными. "
              "Откалибруйте прибор.",
        "ar": "المعايرة: لا يوجد سجل معايرة لهذا الجهاز؛ قد تكون الإزاحات غير دقيقة. قم بمعايرته.",
    },
    "cal.not_applied": {
        "en": "Calibration: device record {id} was not applied to this scan; shifts rest on "
              "the factory calibration.",
        "es": "Calibración: NO aplicada a este espectro (existe el registro {id} del equipo); los "
              "desplazamientos dependen de la calibración de fábrica.",
        "fr": "Étalonnage : NON appliqué à ce spectre (l'appareil a l'enregistrement {id}) ; les "
              "décalages reposent sur l'étalonnage d'usine.",
        "pt": "Calibração: NÃO aplicada a este espetro (existe o registo {id} do equipamento); os "
              "deslocamentos dependem da calibração de fábrica.",
        "ru": "Калибровка: НЕ применена к этому спектру (у прибора есть запись {id}); сдвиги "
              "основаны на заводской калибровке.",
        "ar": "المعايرة: لم تُطبَّق على هذا القياس (للجهاز سجل معايرة {id})؛ تعتمد الإزاحات على "
              "معايرة المصنع.",
    },
    "cal.stale": {
        "en": "Calibration: EXPIRED ({id}, {age} days old). Recalibrate the device.",
        "es": "Calibración: CADUCADA ({id}, antigüedad {age} días). Vuelva a calibrar el equipo.",
        "fr": "Étalonnage : EXPIRÉ ({id}, ancienneté {age} jours). Réétalonnez l'appareil.",
        "pt": "Calibração: EXPIRADA ({id}, idade {age} dias). Volte a calibrar o equipamento.",
        "ru": "Калибровка: ПРОСРОЧЕНА ({id}, возраст в днях: {age}). Откалибруйте прибор заново.",
        "ar": "المعايرة: منتهية الصلاحية ({id}، عمرها بالأيام: {age}). أعد معايرة الجهاز.",
    },
    "cal.failed": {
        "en": "Calibration: FAILED ({id}). Recalibrate the device before relying on results.",
        "es": "Calibración: FALLIDA ({id}). Vuelva a calibrar el equipo antes de fiarse de los "
              "resultados.",
        "fr": "Étalonnage : ÉCHOUÉ ({id}). Réétalonnez l'appareil avant de vous fier aux "
              "résultats.",
        "pt": "Calibração: FALHOU ({id}). Volte a calibrar o equipamento antes de confiar nos "
              "resultados.",
        "ru": "Калибровка: НЕУДАЧНАЯ ({id}). Откалибруйте прибор заново, прежде чем доверять "
              "результатам.",
        "ar": "المعايرة: فاشلة ({id}). أعد معايرة الجهاز قبل الاعتماد على النتائج.",
    },
    "cal.unknown_device": {
        "en": "Calibration: unknown (the file names no device serial)",
        "es": "Calibración: desconocida (el archivo no indica el número de serie del equipo)",
        "fr": "Étalonnage : inconnu (le fichier n'indique pas le numéro de série de l'appareil)",
        "pt": "Calibração: desconhecida (o ficheiro não indica o número de série do equipamento)",
        "ru": "Калибровка: неизвестна (в файле не указан серийный номер прибора)",
        "ar": "المعايرة: غير معروفة (لا يذكر الملف الرقم التسلسلي للجهاز)",
    },
    # -- summary and other lines ------------------------------------------------------------------
    "summary": {
        "en": "Summary - scans: {n} | identified: {match} | mixtures: {mixture} | no match: "
              "{no_match} | inconclusive: {inconclusive} | HAZARD: {hazard} | unreadable: {errors}",
        "es": "Resumen - espectros: {n} | identificados: {match} | mezclas: {mixture} | sin "
              "coincidencia: {no_match} | no concluyentes: {inconclusive} | PELIGRO: {hazard} | "
              "ilegibles: {errors}",
        "fr": "Résumé - spectres : {n} | identifiés : {match} | mélanges : {mixture} | sans "
              "correspondance : {no_match} | non concluants : {inconclusive} | DANGER : {hazard} "
              "| illisibles : {errors}",
        "pt": "Resumo - espectros: {n} | identificados: {match} | misturas: {mixture} | sem "
              "correspondência: {no_match} | inconclusivos: {inconclusive} | PERIGO: {hazard} | "
              "ilegíveis: {errors}",
        "ru": "Итог - спектров: {n} | определено: {match} | смесей: {mixture} | без совпадений: "
              "{no_match} | без заключения: {inconclusive} | ОПАСНОСТЬ: {hazard} | не прочитано: "
              "{errors}",
        "ar": "الملخص - الأطياف: {n} | تم التعرف: {match} | خلائط: {mixture} | دون تطابق: "
              "{no_match} | غير حاسمة: {inconclusive} | خطر: {hazard} | تعذرت قراءتها: {errors}",
    },
    "plot.written": {
        "en": "Plot written: {path}",
        "es": "Gráfico guardado: {path}",
        "fr": "Graphique enregistré : {path}",
        "pt": "Gráfico guardado: {path}",
        "ru": "График сохранён: {path}",
        "ar": "تم حفظ الرسم البياني: {path}",
    },
    "simulated": {
        "en": "SIMULATED example, not a measured scan",
        "es": "Ejemplo SIMULADO, no es un espectro medido",
        "fr": "Exemple SIMULÉ, ce n'est pas un spectre mesuré",
        "pt": "Exemplo SIMULADO, não é um espectro medido",
        "ru": "СМОДЕЛИРОВАННЫЙ пример, а не измеренный спектр",
        "ar": "مثال مُحاكى، وليس طيفًا مُقاسًا",
    },
    "demo.intro": {
        "en": "ramanid demo: identifying bundled example scans as a field officer would see them.",
        "es": "Demostración de ramanid: identificación de espectros de ejemplo incluidos, tal "
              "como los vería un agente sobre el terreno.",
        "fr": "Démonstration de ramanid : identification des spectres d'exemple fournis, tels "
              "qu'un agent de terrain les verrait.",
        "pt": "Demonstração do ramanid: identificação de espectros de exemplo incluídos, tal "
              "como um agente no terreno os veria.",
        "ru": "Демонстрация ramanid: определение прилагаемых примеров спектров в том виде, в "
              "каком их увидит сотрудник на месте.",
        "ar": "عرض ramanid: التعرف على أطياف الأمثلة المرفقة كما يراها الضابط الميداني.",
    },
    "demo.plots": {
        "en": "Plots written to: {path}",
        "es": "Gráficos guardados en: {path}",
        "fr": "Graphiques enregistrés dans : {path}",
        "pt": "Gráficos guardados em: {path}",
        "ru": "Графики сохранены в: {path}",
        "ar": "تم حفظ الرسوم البيانية في: {path}",
    },
}

# Names of hazard classes and provenance kinds, for the honesty warnings.
TERMS: dict[str, dict[str, str]] = {
    "fentanyl-class opioid": {
        "es": "opioides del grupo del fentanilo", "fr": "opioïdes de la famille du fentanyl",
        "pt": "opioides do grupo do fentanil", "ru": "опиоиды группы фентанила",
        "ar": "المواد الأفيونية من فئة الفنتانيل",
    },
    "opioid": {
        "es": "opioides", "fr": "opioïdes", "pt": "opioides", "ru": "опиоиды",
        "ar": "المواد الأفيونية",
    },
    "explosive precursor": {
        "es": "precursores de explosivos", "fr": "précurseurs d'explosifs",
        "pt": "precursores de explosivos", "ru": "прекурсоры взрывчатых веществ",
        "ar": "سلائف المتفجرات",
    },
    "stimulant": {
        "es": "estimulantes", "fr": "stimulants", "pt": "estimulantes", "ru": "стимуляторы",
        "ar": "المنشطات",
    },
    "in-silico": {
        "es": "calculada in silico", "fr": "calculée in silico", "pt": "calculada in silico",
        "ru": "рассчитан in silico", "ar": "محسوب حاسوبيًا",
    },
    "modelled": {
        "es": "modelada", "fr": "modélisée", "pt": "modelada", "ru": "смоделирован",
        "ar": "مُنمذَج",
    },
}


def normalise_lang(code: str | None) -> str | None:
    """Map a language or locale code (``"es_MX.UTF-8"``, ``"pt-BR"``, ``"FR"``) to a supported code.

    Returns ``None`` when the code names no supported language.
    """
    if not code:
        return None
    base = code.strip().split(".")[0].split("@")[0].replace("-", "_").split("_")[0].lower()
    return base if base in LANGS else None


def resolve_lang(lang: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """Choose the output language.

    Parameters
    ----------
    lang
        An explicit choice (``--lang``); wins when it names a supported language.
    environ
        Environment to consult (default ``os.environ``): ``RAMANID_LANG``, then the POSIX locale
        variables ``LC_ALL``, ``LC_MESSAGES``, ``LANG`` in that order of precedence.

    Returns
    -------
    str
        One of :data:`LANGS`; English when nothing else applies.
    """
    env = os.environ if environ is None else environ
    for candidate in (lang, env.get("RAMANID_LANG"), env.get("LC_ALL"), env.get("LC_MESSAGES"),
                      env.get("LANG")):
        code = normalise_lang(candidate)
        if code:
            return code
    return "en"


def t(key: str, lang: str = "en", **fmt: object) -> str:
    """Return the message ``key`` in ``lang`` (English if missing), formatted with ``fmt``."""
    entry = MESSAGES[key]
    text = entry.get(lang) or entry["en"]
    return text.format(**fmt) if fmt else text


def term(word: str, lang: str = "en") -> str:
    """Translate a hazard-class or provenance term; unknown terms are returned unchanged."""
    if lang == "en":
        return word
    return TERMS.get(word.lower(), {}).get(lang, word)


def number(value: float, lang: str = "en", digits: int = 2) -> str:
    """Format a number with ``digits`` decimals and the language's decimal separator."""
    text = f"{value:.{digits}f}"
    return text.replace(".", _DECIMAL.get(lang, "."))
